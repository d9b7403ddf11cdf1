/**
 * firewall-cmd's text output, rendered from the module's structured results. The Python agent
 * answered some actions with that text (`get_zone.config`, `get_active_zones.active_zones`,
 * passthroughs); python-results.ts adds it beside our keys. Each renderer follows firewall-cmd
 * 1.x line for line (firewall/command.py, /usr/bin/firewall-cmd), and the Python-results test
 * compares it with firewall-cmd run against the same firewalld.
 */

interface PortProto {
  port: string;
  protocol: string;
}

/** A zone as zoneInfo() returns it (the keys the text needs). */
export interface ZoneText {
  name: string;
  target: string;
  icmp_block_inversion: boolean;
  interfaces: string[];
  sources: string[];
  services: string[];
  ports: PortProto[];
  protocols: string[];
  forward: boolean;
  masquerade: boolean;
  forward_ports: Array<PortProto & { to_port: string; to_addr: string }>;
  source_ports: PortProto[];
  icmp_blocks: string[];
  rich_rules: string[];
}

/** `"80/tcp"` strings of `{port, protocol}` objects, as firewall-cmd lists ports. */
export const portList = (ports: PortProto[]): string[] => ports.map((p) => `${p.port}/${p.protocol}`);

/** Byte order, as Python's sorted() orders str. */
const sorted = (xs: string[]) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** firewall-cmd sorts rich rules by their priority value (0 without one), keeping their order otherwise. */
function richRulePriority(rule: string): number {
  const at = rule.indexOf('priority=');
  if (at < 0) return 0;
  const rest = rule.slice(at + 'priority='.length);
  const end = rest.indexOf(' ');
  const n = Number.parseInt((end < 0 ? rest : rest.slice(0, end)).replaceAll('"', ''), 10);
  return Number.isFinite(n) ? n : 0;
}

/** `firewall-cmd [--permanent] --zone=Z --list-all`, with its final newline. */
export function zoneText(z: ZoneText): string {
  const interfaces = sorted([...new Set(z.interfaces)]);
  const head = interfaces.length || z.sources.length ? `${z.name} (active)` : z.name;
  const rules = z.rich_rules.map((r, i) => ({ r, i, p: richRulePriority(r) })).sort((a, b) => a.p - b.p || a.i - b.i);
  const tabbed = (xs: string[]) => (xs.length ? `\n\t${xs.join('\n\t')}` : '');
  const lines = [
    head,
    `  target: ${z.target}`,
    `  icmp-block-inversion: ${z.icmp_block_inversion ? 'yes' : 'no'}`,
    `  interfaces: ${interfaces.join(' ')}`,
    `  sources: ${z.sources.join(' ')}`,
    `  services: ${sorted(z.services).join(' ')}`,
    `  ports: ${portList(z.ports).join(' ')}`,
    `  protocols: ${sorted(z.protocols).join(' ')}`,
    `  forward: ${z.forward ? 'yes' : 'no'}`,
    `  masquerade: ${z.masquerade ? 'yes' : 'no'}`,
    `  forward-ports: ${tabbed(z.forward_ports.map((f) => `port=${f.port}:proto=${f.protocol}:toport=${f.to_port}:toaddr=${f.to_addr}`))}`,
    `  source-ports: ${portList(z.source_ports).join(' ')}`,
    `  icmp-blocks: ${z.icmp_blocks.join(' ')}`,
    `  rich rules: ${tabbed(rules.map((x) => x.r))}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** `firewall-cmd --get-active-zones` from `{zone: {interfaces, sources}}` (firewalld's order). */
export function activeZonesText(zones: Record<string, { interfaces: string[]; sources: string[] }>): string {
  let out = '';
  for (const [name, z] of Object.entries(zones)) {
    out += `${name}\n`;
    // firewalld leaves out an empty list, and firewall-cmd prints only what is there.
    if (z.interfaces.length) out += `  interfaces: ${z.interfaces.join(' ')}\n`;
    if (z.sources.length) out += `  sources: ${z.sources.join(' ')}\n`;
  }
  return out;
}

/** Python's shlex.quote: a word as a POSIX shell would need it. */
function shellQuote(s: string): string {
  if (s === '') return "''";
  if (!/[^\w@%+=:,./-]/.test(s)) return s;
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** One passthrough as `firewall-cmd --direct --get-passthroughs IPV` prints it. */
export function passthroughText(args: string[]): string {
  return args.map(shellQuote).join(' ');
}
