/**
 * What the info actions return for firewalld's a{sv} settings, which omit empty keys and carry
 * ports as tuples: one field decoder per key, in the order the result lists them.
 */

type Settings = Record<string, unknown>;
/** Decodes one result key from the settings dict. */
export type InfoFields = Record<string, (s: Settings) => unknown>;

type Tuple = string[];
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const strs = (v: unknown): string[] => arr(v).map(String);
/** `[port, protocol]` tuples as objects. */
export const portProtos = (v: unknown) => arr(v).map((t) => ({ port: String((t as Tuple)[0]), protocol: String((t as Tuple)[1]) }));
/** `[port, protocol, to_port, to_addr]` tuples as objects. */
export const forwardPorts = (v: unknown) =>
  arr(v).map((t) => {
    const [port, protocol, to_port, to_addr] = (t as Tuple).map(String);
    return { port: port!, protocol: protocol!, to_port: to_port ?? '', to_addr: to_addr ?? '' };
  });

const text = (k: string, d = '') => (s: Settings) => String(s[k] ?? d);
const list = (k: string) => (s: Settings) => strs(s[k]);
const pairs = (k: string) => (s: Settings) => portProtos(s[k]);
const flag = (k: string) => (s: Settings) => s[k] === true;

/** short and description, first in every info result. */
const DESCRIBED: InfoFields = { short: text('short'), description: text('description') };
/** services, ports, protocols and source ports: what zones, policies and services all hold. */
const OPENED: InfoFields = { services: list('services'), ports: pairs('ports'), protocols: list('protocols'), source_ports: pairs('source_ports') };

export const ZONE_INFO: InfoFields = {
  ...DESCRIBED,
  target: text('target', 'default'),
  ...OPENED,
  icmp_blocks: list('icmp_blocks'),
  icmp_block_inversion: flag('icmp_block_inversion'),
  masquerade: flag('masquerade'),
  forward: flag('forward'),
  forward_ports: (s) => forwardPorts(s.forward_ports),
  interfaces: list('interfaces'),
  sources: list('sources'),
  rich_rules: (s) => strs(s.rules_str ?? s.rich_rules),
};

export const POLICY_INFO: InfoFields = {
  ...DESCRIBED,
  target: text('target', 'CONTINUE'),
  priority: (s) => Number(s.priority ?? -1),
  ingress_zones: list('ingress_zones'),
  egress_zones: list('egress_zones'),
  ...OPENED,
  icmp_blocks: list('icmp_blocks'),
  masquerade: flag('masquerade'),
  forward_ports: (s) => forwardPorts(s.forward_ports),
  rich_rules: list('rich_rules'),
};

const { services: _services, ...SERVICE_OPENED } = OPENED;
export const SERVICE_INFO: InfoFields = {
  ...DESCRIBED,
  ...SERVICE_OPENED,
  modules: list('modules'),
  helpers: list('helpers'),
  includes: list('includes'),
  destination: (s) => s.destination ?? {},
};

/** An ipset's `(version, short, description, type, options, entries)` settings as the result object. */
export function ipsetInfo(name: string, permanent: boolean, raw: [string, string, string, string, Record<string, string>, string[]]) {
  const [version, short, description, type, options, entries] = raw;
  return { name, permanent, version, short, description, type, options: options ?? {}, entries: entries ?? [] };
}
