/**
 * Parameter schemas (TypeBox, checked by the registry before any handler) and the deeper
 * semantic checks the patterns cannot express (ranges, CIDR prefixes, rich-rule sanity).
 * Every pattern starts with an alphanumeric, so no value can look like an option.
 */
import net from 'node:net';
import { Type } from '@sinclair/typebox';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { quote } from '../../../sdk/schema.ts';
import { PORT_PATTERN, RICH_RULE_PATTERN, SERVICE_PATTERN, ZONE_PATTERN } from '../../../protocol/firewall-template.ts';

const NO_CTRL = '^[^\\u0000-\\u001f\\u007f]';

export const P = {
  zone: () => Type.String({ pattern: ZONE_PATTERN, maxLength: 17, description: 'zone name: letters, digits, "_" and "-", at most 17 characters' }),
  service: () => Type.String({ pattern: SERVICE_PATTERN, maxLength: 64, description: 'service name: letters, digits, "_" and "-"' }),
  ipset: () => Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$', maxLength: 31, description: 'ipset name: letters, digits, "_", "." and "-", at most 31 characters' }),
  policy: () => Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$', maxLength: 40, description: 'policy name: letters, digits, "_" and "-"' }),
  helper: () => Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', maxLength: 64, description: 'helper name, e.g. "ftp"' }),
  icmpType: () => Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,63}$', maxLength: 64, description: 'ICMP type name, e.g. "echo-request"' }),
  iface: () => Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}$', maxLength: 15, description: 'network interface name (at most 15 characters)' }),
  port: () => Type.String({ pattern: PORT_PATTERN, maxLength: 17, description: 'port or range with protocol: "N/proto" or "N-M/proto", proto tcp, udp, sctp or dccp' }),
  portOnly: () => Type.String({ pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$', maxLength: 11, description: 'port "N" or range "N-M"' }),
  portProto: () => Type.Union([Type.Literal('tcp'), Type.Literal('udp'), Type.Literal('sctp'), Type.Literal('dccp')], { description: 'tcp, udp, sctp or dccp' }),
  protocol: () => Type.String({ pattern: '^([a-z][a-z0-9_.+-]{0,31}|[0-9]{1,3})$', maxLength: 32, description: 'protocol name from /etc/protocols or number, e.g. "gre"' }),
  source: () =>
    Type.String({ pattern: '^([0-9A-Fa-f.:]{2,45}(/[0-9]{1,3})?|ipset:[A-Za-z0-9][A-Za-z0-9_.-]{0,30})$', maxLength: 50, description: 'IPv4/IPv6 address or CIDR, MAC address, or "ipset:NAME"' }),
  address: () => Type.String({ pattern: '^[0-9A-Fa-f.:]{2,45}$', maxLength: 45, description: 'IPv4 or IPv6 address' }),
  rule: () => Type.String({ pattern: RICH_RULE_PATTERN, maxLength: 2048, description: 'firewalld rich rule, e.g. rule family="ipv4" source address="10.0.0.0/8" service name="ssh" accept' }),
  zoneTarget: () => Type.Union(['default', 'ACCEPT', 'DROP', 'REJECT', '%%REJECT%%'].map((t) => Type.Literal(t)), { description: 'default, ACCEPT, DROP, REJECT or %%REJECT%%' }),
  policyTarget: () => Type.Union(['CONTINUE', 'ACCEPT', 'DROP', 'REJECT'].map((t) => Type.Literal(t)), { description: 'CONTINUE, ACCEPT, DROP or REJECT' }),
  logDenied: () => Type.Union(['all', 'unicast', 'broadcast', 'multicast', 'off'].map((t) => Type.Literal(t)), { description: 'all, unicast, broadcast, multicast or off' }),
  ipsetType: () =>
    Type.Union(
      ['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:ip,mark', 'hash:net', 'hash:net,net', 'hash:net,port', 'hash:net,port,net', 'hash:net,iface', 'hash:mac'].map((t) =>
        Type.Literal(t),
      ),
      { description: 'ipset type, e.g. "hash:ip" or "hash:net"' },
    ),
  ipsetEntry: () => Type.String({ pattern: '^[0-9A-Za-z][0-9A-Za-z.:/,_-]{0,199}$', maxLength: 200, description: 'ipset entry: address, network, MAC, or comma-joined tuple for the set type' }),
  ipv: () => Type.Union([Type.Literal('ipv4'), Type.Literal('ipv6'), Type.Literal('eb')], { description: 'ipv4, ipv6 or eb' }),
  table: () => Type.Union(['filter', 'nat', 'mangle', 'raw', 'security', 'broute'].map((t) => Type.Literal(t)), { description: 'filter, nat, mangle, raw, security or broute' }),
  chain: () => Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,28}$', maxLength: 29, description: 'chain name (at most 29 characters)' }),
  priority: () => Type.Integer({ minimum: -32768, maximum: 32767, description: 'rule priority' }),
  args: () => Type.Array(Type.String({ pattern: `${NO_CTRL}{1,256}$`, maxLength: 256 }), { minItems: 1, maxItems: 64, description: 'iptables arguments, one per element' }),
  // firewalld compares it with /proc/PID/cmdline, never runs it; shell characters are still refused, since no real command line of a trusted client needs them.
  command: () =>
    Type.String({
      pattern: '^/[A-Za-z0-9_./@+=:,% -]{0,1022}\\*?$',
      maxLength: 1024,
      description: 'absolute command line: letters, digits, spaces and _./@+=:,%-, "*" allowed at the end',
    }),
  context: () => Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.:,-]{0,254}$', maxLength: 255, description: 'SELinux context' }),
  user: () => Type.String({ pattern: '^[a-z_][a-z0-9_.-]{0,31}$', maxLength: 32, description: 'user name' }),
  // firewalld takes the uid as a D-Bus int32.
  uid: () => Type.Integer({ minimum: 0, maximum: 2147483647, description: 'numeric user id' }),
  permanent: () => Type.Optional(Type.Boolean({ description: 'change the permanent configuration instead of the runtime (default false)' })),
  dryRun: () => Type.Optional(Type.Boolean({ description: 'report what would change without changing it' })),
  confirmTimeout: () =>
    Type.Optional(Type.Integer({ minimum: 5, maximum: 3600, description: 'seconds: roll the change back unless "confirm" with the returned change_id arrives in time' })),
  changeId: () => Type.String({ pattern: '^[0-9a-f]{16}$', description: 'change id returned by a write with confirm_timeout' }),
};

/** Throws the project's invalid-params error for one parameter. */
export function invalid(param: string, value: unknown, why: string): never {
  throw new TuxsecError(ErrorCodes.invalidParams, `invalid value ${quote(value)} for parameter "${param}": ${why}`, { parameter: param });
}

function portNumber(param: string, full: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 65535) invalid(param, full, 'port must be between 1 and 65535');
  return n;
}

/** Checks "N" or "N-M"; returns the normalized text. */
export function checkPortRange(param: string, value: string): string {
  const [a, b] = value.split('-');
  const lo = portNumber(param, value, a!);
  if (b === undefined) return String(lo);
  const hi = portNumber(param, value, b);
  if (hi < lo) invalid(param, value, 'range end is below its start');
  return `${lo}-${hi}`;
}

/** Checks "N/proto" or "N-M/proto" and splits it. */
export function checkPort(param: string, value: string): { port: string; protocol: string } {
  const slash = value.indexOf('/');
  if (slash < 0) invalid(param, value, 'expected "N/proto" or "N-M/proto"');
  return { port: checkPortRange(param, value.slice(0, slash)), protocol: value.slice(slash + 1) };
}

const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

function checkCidr(param: string, value: string, allowPrefix: boolean): void {
  const [addr, prefix, extra] = value.split('/');
  if (extra !== undefined) invalid(param, value, 'more than one "/"');
  const fam = net.isIP(addr!);
  if (fam === 0) invalid(param, value, 'not an IPv4 or IPv6 address');
  if (prefix !== undefined) {
    if (!allowPrefix) invalid(param, value, 'a prefix length is not allowed here');
    if (!/^[0-9]{1,3}$/.test(prefix)) invalid(param, value, 'prefix length must be a number');
    const n = Number(prefix);
    if (n > (fam === 4 ? 32 : 128)) invalid(param, value, `prefix length must be at most ${fam === 4 ? 32 : 128}`);
  }
}

/** Checks a zone source: address, CIDR, MAC or ipset:NAME. */
export function checkSource(param: string, value: string): void {
  if (value.startsWith('ipset:')) return;
  if (MAC.test(value)) return;
  checkCidr(param, value, true);
}

/** Checks a plain IPv4/IPv6 address (no prefix). */
export function checkAddress(param: string, value: string): void {
  checkCidr(param, value, false);
}

/** A word of a rich rule outside quotes, optionally `=value`; quoted values are printable ASCII. */
const RICH_WORD = /^[a-z][a-z0-9-]*$/;
const RICH_BARE_VALUE = /^[A-Za-z0-9_.:/,+-]+$/;

/**
 * Rich rules go to firewalld as one string and firewalld parses them; this checks the token
 * shapes of its language (`word`, `attr=value`, `attr="value"`) before the call, so shell
 * characters, option-like words, stray quotes and non-ASCII text never reach firewalld.
 */
export function checkRichRule(param: string, value: string): string {
  const v = value.trim();
  if (!/^rule(\s|$)/.test(v)) invalid(param, value, 'a rich rule starts with "rule"');
  if ((v.match(/"/g) ?? []).length % 2 !== 0) invalid(param, value, 'unbalanced double quotes');
  if (v.length < 6) invalid(param, value, 'rule has no action or element');
  const bad = /[^\x20-\x7e]/.exec(v);
  if (bad) invalid(param, value, `character ${JSON.stringify(bad[0])} at ${bad.index}: a rich rule is printable ASCII`);
  let i = 0;
  while (i < v.length) {
    if (v[i] === ' ') {
      i++;
      continue;
    }
    const start = i;
    while (i < v.length && v[i] !== ' ' && v[i] !== '=') i++;
    const word = v.slice(start, i);
    if (!RICH_WORD.test(word)) invalid(param, value, `"${word.slice(0, 40)}" at ${start} is not a rich rule word (lower-case letters, digits and "-")`);
    if (v[i] !== '=') continue;
    i++;
    if (v[i] === '"') {
      const end = v.indexOf('"', i + 1);
      i = end + 1; // quotes are balanced, so end >= 0
      if (i < v.length && v[i] !== ' ') invalid(param, value, `a space must follow the quoted value of "${word}" at ${start}`);
      continue;
    }
    const vs = i;
    while (i < v.length && v[i] !== ' ') i++;
    const bare = v.slice(vs, i);
    if (!RICH_BARE_VALUE.test(bare)) invalid(param, value, `value "${bare.slice(0, 40)}" of "${word}" at ${start}: quote it, or use letters, digits and _.:/,+-`);
  }
  return v;
}

/** Checks an ipset entry: every comma-separated part must be an address, net, MAC, port or interface. */
export function checkIpsetEntry(param: string, value: string): void {
  for (const part of value.split(',')) {
    if (part === '') invalid(param, value, 'empty element');
    if (MAC.test(part)) continue;
    const protoPort = /^[a-z]+:([0-9]+(-[0-9]+)?)$/.exec(part);
    if (protoPort) {
      checkPortRange(param, protoPort[1]!); // "tcp:80" in hash:ip,port sets
      continue;
    }
    if (/^[0-9]+(-[0-9]+)?$/.test(part)) {
      checkPortRange(param, part);
      continue;
    }
    const dash = part.indexOf('-');
    if (dash > 0 && !part.includes('/') && net.isIP(part.slice(0, dash)) !== 0) {
      for (const a of part.split('-')) checkCidr(param, a, false); // address range "a-b"
      continue;
    }
    if (part.includes('.') || part.includes(':')) {
      checkCidr(param, part, true);
      continue;
    }
    if (/^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}$/.test(part)) continue; // interface name (hash:net,iface)
    invalid(param, value, `"${part}" is not an address, network, MAC, port or interface`);
  }
}
