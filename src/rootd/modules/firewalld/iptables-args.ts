/**
 * Allowlist of the iptables/ip6tables/ebtables arguments that direct rules and passthroughs may
 * carry. firewalld runs these programs as root with the arguments as given, and they parse them
 * with getopt_long: long options may be abbreviated (`--tab` is `--table`), short options cluster
 * (`-tnat`, `-vt nat`), values attach (`--table=nat`), and options such as `--modprobe=PATH` make
 * iptables run a program. A denylist cannot keep up with that, so every argument must be exactly
 * one option spelled in full, standing alone, followed by its values as separate arguments whose
 * shapes are checked; anything else is refused, naming the argument.
 */
import net from 'node:net';
import { invalid } from './validate.ts';

/** How the arguments are used: a rule body (firewalld adds table, command and chain) or a whole command. */
export type ArgsMode = 'rule' | 'passthrough';
export type ArgsFamily = 'ipv4' | 'ipv6' | 'eb';

type Check = (v: string) => string | null;

const re =
  (pattern: RegExp, what: string): Check =>
  (v) =>
    pattern.test(v) ? null : what;
const oneOf =
  (values: readonly string[], what: string): Check =>
  (v) =>
    values.includes(v) ? null : `${what}: one of ${values.join(', ')}`;
const list =
  (each: Check, max: number, what: string): Check =>
  (v) => {
    const parts = v.split(',');
    if (parts.length > max) return `${what}: at most ${max} elements`;
    for (const p of parts) if (each(p) !== null) return what;
    return null;
  };

const CHAIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,28}$/;
const chain: Check = re(CHAIN_RE, 'expected a chain name (letters, digits, "_", "." and "-", at most 29 characters)');
const uint = (max: number, what: string): Check => (v) => (/^[0-9]{1,10}$/.test(v) && Number(v) <= max ? null : `expected ${what} (0..${max})`);

function portNum(s: string): boolean {
  return /^[0-9]{1,5}$/.test(s) && Number(s) <= 65535;
}
/** iptables port or range: "22", "1024:2048", ":1024", "1024:". */
const portSpec: Check = (v) => {
  const m = /^([0-9]*):([0-9]*)$/.exec(v);
  if (m) {
    const [, a, b] = m;
    if ((a === '' && b === '') || (a !== '' && !portNum(a!)) || (b !== '' && !portNum(b!))) return 'expected a port or range "N:M" (0..65535)';
    return a !== '' && b !== '' && Number(a) > Number(b) ? 'expected a port range whose end is not below its start' : null;
  }
  return portNum(v) ? null : 'expected a port or range "N:M" (0..65535)';
};
const portList: Check = list(portSpec, 15, 'expected up to 15 comma-separated ports or ranges "N:M"');
/** Target port range of MASQUERADE/REDIRECT: "N" or "N-M". */
const toPorts: Check = (v) => {
  const [a, b, extra] = v.split('-');
  return extra === undefined && portNum(a!) && (b === undefined || (portNum(b) && Number(a) <= Number(b))) ? null : 'expected a port or range "N-M"';
};

function cidr(v: string): boolean {
  const [addr, prefix, extra] = v.split('/');
  // node accepts an IPv6 zone id ("fe80::1%eth0"); its "%" could form a firewalld placeholder.
  if (extra !== undefined || v.includes('%')) return false;
  const fam = net.isIP(addr!);
  if (fam === 0) return false;
  if (prefix === undefined) return true;
  if (/^[0-9]{1,3}$/.test(prefix)) return Number(prefix) <= (fam === 4 ? 32 : 128);
  return fam === 4 && net.isIPv4(prefix); // dotted mask 255.255.0.0
}
// Addresses only: a host name would make iptables (as root) ask DNS.
const addresses: Check = list((v) => (cidr(v) ? null : 'x'), 16, 'expected up to 16 comma-separated IPv4/IPv6 addresses or CIDRs');
const addrRange: Check = (v) => {
  const [a, b, extra] = v.split('-');
  return extra === undefined && !v.includes('%') && net.isIP(a!) !== 0 && (b === undefined || net.isIP(b) === net.isIP(a!)) ? null : 'expected an address or range "A-B"';
};
/** SNAT/DNAT: ADDR[-ADDR][:PORT[-PORT]]; IPv6 in brackets. */
const natTo: Check = (v) => {
  const m = /^(\[[0-9A-Fa-f:.]+\](?:-\[[0-9A-Fa-f:.]+\])?|[0-9.]+(?:-[0-9.]+)?)?(?::([0-9]{1,5}(?:-[0-9]{1,5})?))?$/.exec(v);
  if (!m || v === '') return 'expected ADDR[-ADDR][:PORT[-PORT]]';
  const addrs = (m[1] ?? '').replace(/[[\]]/g, '');
  if (addrs !== '' && addrRange(addrs) !== null) return 'expected ADDR[-ADDR][:PORT[-PORT]]';
  if (m[2] !== undefined && toPorts(m[2]) !== null) return 'expected ADDR[-ADDR][:PORT[-PORT]] with ports 0..65535';
  return null;
};
const iface: Check = re(/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}\+?$/, 'expected an interface name (at most 15 characters, "+" at the end for a prefix)');
const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
const mac: Check = re(MAC_RE, 'expected a MAC address');
const macMask: Check = (v) => {
  const [a, m, extra] = v.split('/');
  return extra === undefined && MAC_RE.test(a!) && (m === undefined || MAC_RE.test(m)) ? null : 'expected a MAC address, optionally "/MASK"';
};
const PROTOS = ['tcp', 'udp', 'udplite', 'icmp', 'icmpv6', 'ipv6-icmp', 'esp', 'ah', 'sctp', 'gre', 'mh', 'dccp', 'all'];
const protocol: Check = (v) => (PROTOS.includes(v) || (/^[0-9]{1,3}$/.test(v) && Number(v) <= 255) ? null : `expected a protocol: one of ${PROTOS.join(', ')} or 0..255`);
const ebProtocol: Check = re(/^(IPv4|IPv6|ARP|RARP|802_1Q|LENGTH|0x[0-9A-Fa-f]{4})$/, 'expected an ethernet protocol: IPv4, IPv6, ARP, RARP, 802_1Q, LENGTH or 0xNNNN');
const markValue: Check = re(/^(0x[0-9A-Fa-f]{1,8}|[0-9]{1,10})(\/(0x[0-9A-Fa-f]{1,8}|[0-9]{1,10}))?$/, 'expected a mark "VALUE[/MASK]" (decimal or 0x hex)');
const icmpType: Check = re(/^([a-z][a-z-]{0,39}|[0-9]{1,3}(\/[0-9]{1,3})?)$/, 'expected an ICMP type name or "TYPE[/CODE]"');
/**
 * Free text (comments, log prefixes). firewalld hands direct rules and passthroughs to
 * iptables-restore, wrapping an argument that holds whitespace in double quotes without escaping
 * what is inside, and rewrites "%%NAME%%" placeholders after we checked the rule: a `"` would end
 * the quoted value and let the rest be read as options, a `%` could form a placeholder. So only
 * characters that mean nothing to either are allowed, and no leading "-" (it would read as an option).
 */
const TEXT_RE = /^[A-Za-z0-9 _.:,/@+=()[\]-]+$/;
const text =
  (max: number): Check =>
  (v) =>
    v.length <= max && TEXT_RE.test(v) && !v.startsWith('-')
      ? null
      : `expected text of 1..${max} characters from letters, digits, space and _.:,/@+=()[]-, not starting with "-"`;
const CT_STATES = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT'];
const ctStates: Check = list(oneOf(CT_STATES, 'x'), 7, `expected comma-separated states from ${CT_STATES.join(', ')}`);
const states: Check = list(oneOf(CT_STATES.slice(0, 5), 'x'), 5, `expected comma-separated states from ${CT_STATES.slice(0, 5).join(', ')}`);
const TCP_FLAGS = ['SYN', 'ACK', 'FIN', 'RST', 'URG', 'PSH', 'ALL', 'NONE'];
const tcpFlags: Check = list(oneOf(TCP_FLAGS, 'x'), 8, `expected comma-separated TCP flags from ${TCP_FLAGS.join(', ')}`);
const ADDR_TYPES = ['UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE'];
const addrTypes: Check = list(oneOf(ADDR_TYPES, 'x'), 12, `expected comma-separated address types from ${ADDR_TYPES.join(', ')}`);
const rate: Check = re(/^[0-9]{1,6}\/(second|minute|hour|day|sec|min|s|m|h|d)$/, 'expected a rate "N/second", "N/minute", "N/hour" or "N/day"');
const lengthRange: Check = re(/^[0-9]{1,5}(:[0-9]{1,5})?$/, 'expected a length or range "N:M"');
const ipsetName: Check = re(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/, 'expected an ipset name');
const setFlags: Check = list(oneOf(['src', 'dst'], 'x'), 6, 'expected up to 6 comma-separated "src"/"dst"');
const REJECT_WITH = [
  'icmp-net-unreachable',
  'icmp-host-unreachable',
  'icmp-port-unreachable',
  'icmp-proto-unreachable',
  'icmp-net-prohibited',
  'icmp-host-prohibited',
  'icmp-admin-prohibited',
  'tcp-reset',
  'icmp6-no-route',
  'no-route',
  'icmp6-adm-prohibited',
  'adm-prohibited',
  'icmp6-addr-unreachable',
  'addr-unreach',
  'icmp6-port-unreachable',
];
const LOG_LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug', '0', '1', '2', '3', '4', '5', '6', '7'];

/** One option: its spellings, the shapes of its values, and whether `!` may precede it. */
interface Opt {
  names: string[];
  values?: Check[];
  negatable?: boolean;
}
const opt = (names: string[], values: Check[] = [], negatable = false): Opt => ({ names, values, negatable });

/** Options every rule may use (iptables/ip6tables). */
const IP_BASE: Opt[] = [
  opt(['-p', '--protocol'], [protocol], true),
  opt(['-s', '--source'], [addresses], true),
  opt(['-d', '--destination'], [addresses], true),
  opt(['-i', '--in-interface'], [iface], true),
  opt(['-o', '--out-interface'], [iface], true),
  opt(['-f', '--fragment'], [], true),
];

/** Match modules and the options they bring, loaded with `-m NAME` (or `-p NAME` for protocols). */
const MATCHES: Record<string, Opt[]> = {
  tcp: [
    opt(['--sport', '--source-port'], [portSpec], true),
    opt(['--dport', '--destination-port'], [portSpec], true),
    opt(['--tcp-flags'], [tcpFlags, tcpFlags], true),
    opt(['--syn'], [], true),
    opt(['--tcp-option'], [uint(255, 'a TCP option number')], true),
  ],
  udp: [opt(['--sport', '--source-port'], [portSpec], true), opt(['--dport', '--destination-port'], [portSpec], true)],
  sctp: [opt(['--sport', '--source-port'], [portSpec], true), opt(['--dport', '--destination-port'], [portSpec], true)],
  icmp: [opt(['--icmp-type'], [icmpType], true)],
  icmp6: [opt(['--icmpv6-type'], [icmpType], true)],
  conntrack: [
    opt(['--ctstate'], [ctStates], true),
    opt(['--ctproto'], [protocol], true),
    opt(['--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst'], [addresses], true),
    opt(['--ctorigsrcport', '--ctorigdstport', '--ctreplsrcport', '--ctrepldstport'], [portSpec], true),
  ],
  state: [opt(['--state'], [states], true)],
  multiport: [opt(['--sports', '--source-ports', '--dports', '--destination-ports', '--ports'], [portList], true)],
  comment: [opt(['--comment'], [text(256)])],
  limit: [opt(['--limit'], [rate]), opt(['--limit-burst'], [uint(10000, 'a burst size')])],
  mark: [opt(['--mark'], [markValue], true)],
  connmark: [opt(['--mark'], [markValue], true)],
  iprange: [opt(['--src-range', '--dst-range'], [addrRange], true)],
  mac: [opt(['--mac-source'], [mac], true)],
  addrtype: [opt(['--src-type', '--dst-type'], [addrTypes], true), opt(['--limit-iface-in', '--limit-iface-out'])],
  pkttype: [opt(['--pkt-type'], [oneOf(['unicast', 'broadcast', 'multicast'], 'expected a packet type')], true)],
  length: [opt(['--length'], [lengthRange], true)],
  ttl: [opt(['--ttl-eq', '--ttl-lt', '--ttl-gt'], [uint(255, 'a TTL')], true)],
  hl: [opt(['--hl-eq', '--hl-lt', '--hl-gt'], [uint(255, 'a hop limit')], true)],
  set: [opt(['--match-set'], [ipsetName, setFlags], true)],
};
/** `-p NAME` loads the match of the same name, as iptables does. */
const PROTO_MATCH: Record<string, string> = { tcp: 'tcp', udp: 'udp', sctp: 'sctp', icmp: 'icmp', icmpv6: 'icmp6', 'ipv6-icmp': 'icmp6' };

/** Targets and their options. Any other upper-case name could load a target extension. */
const TARGETS: Record<string, Opt[]> = {
  ACCEPT: [],
  DROP: [],
  RETURN: [],
  REJECT: [opt(['--reject-with'], [oneOf(REJECT_WITH, 'expected a reject type')])],
  LOG: [
    opt(['--log-prefix'], [text(29)]),
    opt(['--log-level'], [oneOf(LOG_LEVELS, 'expected a log level')]),
    opt(['--log-tcp-sequence', '--log-tcp-options', '--log-ip-options', '--log-uid']),
  ],
  MARK: [opt(['--set-mark', '--set-xmark', '--and-mark', '--or-mark', '--xor-mark'], [markValue])],
  MASQUERADE: [opt(['--to-ports'], [toPorts]), opt(['--random'])],
  REDIRECT: [opt(['--to-ports'], [toPorts]), opt(['--random'])],
  SNAT: [opt(['--to-source'], [natTo]), opt(['--random', '--persistent'])],
  DNAT: [opt(['--to-destination'], [natTo]), opt(['--random', '--persistent'])],
};
const EB_TARGETS: Record<string, Opt[]> = { ACCEPT: [], DROP: [], CONTINUE: [], RETURN: [] };
/**
 * Extension names in Debian 12's xtables directory (libxt_, libipt_, libip6t_, libebt_, libarpt_
 * files), lower-cased. A -j name that is no registered target is taken as a user chain, but
 * ebtables' target extensions are lower-case ("-j redirect" loads libebt_redirect.so) and
 * "standard" is a target in both; the names are refused in any case so that no jump loads one.
 */
const EXTENSION_NAMES = new Set(
  (
    '802_3 among arp arpreply dnat ip ip6 log mark mark_m nflog pkttype redirect snat stp vlan ulog mangle ' +
    'dnpt hl netmap reject snpt ah dst eui64 frag hbh icmp6 ipv6header mh rt srh clusterip ecn ttl icmp realm ' +
    'audit checksum classify connmark connsecmark ct dscp hmark idletimer led masquerade nat nfqueue notrack ' +
    'rateest secmark set synproxy tcpmss tcpoptstrip tee tos tproxy trace addrtype bpf cgroup cluster comment ' +
    'connbytes connlabel connlimit conntrack cpu dccp devgroup esp hashlimit helper ipcomp iprange ipvs length ' +
    'limit mac multiport nfacct osf owner physdev policy quota recent rpfilter sctp socket standard state ' +
    'statistic string tcp time u32 udp udplite'
  ).split(' '),
);

const EB_BASE: Opt[] = [
  opt(['-p', '--protocol'], [ebProtocol], true),
  opt(['-s', '--source', '-d', '--destination'], [macMask], true),
  opt(['-i', '--in-interface', '-o', '--out-interface', '--logical-in', '--logical-out'], [iface], true),
];

/** Commands of a passthrough; `rest` says what may follow the chain as a separate argument. */
interface Cmd {
  names: string[];
  chain: 'required' | 'optional' | 'none';
  rest?: 'rulenum?' | 'rulenum' | 'policy' | 'chain';
  /** Whether the command takes a rule specification. */
  rule: boolean;
}
const COMMANDS: Cmd[] = [
  { names: ['-A', '--append'], chain: 'required', rule: true },
  { names: ['-C', '--check'], chain: 'required', rule: true },
  { names: ['-I', '--insert'], chain: 'required', rest: 'rulenum?', rule: true },
  { names: ['-D', '--delete'], chain: 'required', rest: 'rulenum?', rule: true },
  { names: ['-R', '--replace'], chain: 'required', rest: 'rulenum', rule: true },
  { names: ['-N', '--new-chain'], chain: 'required', rule: false },
  { names: ['-X', '--delete-chain'], chain: 'optional', rule: false },
  { names: ['-F', '--flush'], chain: 'optional', rule: false },
  { names: ['-Z', '--zero'], chain: 'optional', rule: false },
  { names: ['-P', '--policy'], chain: 'required', rest: 'policy', rule: false },
  { names: ['-E', '--rename-chain'], chain: 'required', rest: 'chain', rule: false },
];
// ebtables reads some of the same letters differently (-C changes counters); only these agree.
const EB_COMMANDS = COMMANDS.filter((c) => ['-A', '-I', '-D', '-N', '-X', '-F', '-P'].includes(c.names[0]!));
const TABLES: Record<ArgsFamily, string[]> = { ipv4: ['filter', 'nat', 'mangle', 'raw', 'security'], ipv6: ['filter', 'nat', 'mangle', 'raw', 'security'], eb: ['filter', 'nat', 'broute'] };
const PROGRAM: Record<ArgsFamily, string> = { ipv4: 'iptables', ipv6: 'ip6tables', eb: 'ebtables' };

const findOpt = (opts: Opt[], a: string): Opt | undefined => opts.find((o) => o.names.includes(a));

/** Why a token that is no allowed option was refused, in getopt's terms. */
function whyNotOption(a: string, program: string): string {
  if (a.startsWith('--') && a.includes('=')) return `not an allowed ${program} option (options are written in full, their value as the next argument, never "--name=value")`;
  if (/^-[A-Za-z]{2,}/.test(a) && !a.startsWith('--')) return `not an allowed ${program} option (short options are given one per argument, never clustered or with an attached value)`;
  if (a.startsWith('--') && a.length > 2) return `not an allowed ${program} option (long options are spelled in full, never abbreviated)`;
  if (a.startsWith('-')) return `not an allowed ${program} option`;
  return 'unexpected argument (not an option or the value of one)';
}

/**
 * Checks direct-rule (`mode: 'rule'`) or passthrough arguments against the allowlist and throws
 * `invalid-params` naming the first offending argument. A rule carries matches and a target
 * only; a passthrough also exactly one command and optionally `-t TABLE`.
 */
export function checkIptablesArgs(param: string, args: string[], opts: { mode: ArgsMode; family: ArgsFamily }): void {
  const program = PROGRAM[opts.family];
  const eb = opts.family === 'eb';
  function fail(at: number, why: string): never {
    return invalid(`${param}[${at}]`, args[at], why);
  }
  const base = eb ? EB_BASE : IP_BASE;
  const targets = eb ? EB_TARGETS : TARGETS;
  const loaded: Opt[] = [];
  let target: Opt[] | null = null;
  let command: Cmd | null = null;
  let table = false;
  let ruleAt = -1;
  let negate = -1;
  let i = 0;
  const value = (check: Check, at: number, what: string): string => {
    if (at >= args.length) fail(at - 1, `missing ${what} after it`);
    const v = args[at]!;
    const why = check(v);
    if (why !== null) fail(at, why);
    return v;
  };
  while (i < args.length) {
    const a = args[i]!;
    if (a === '!') {
      if (negate >= 0) fail(i, '"!" twice');
      negate = i++;
      continue;
    }
    const neg = negate >= 0;
    negate = -1;
    if (a === '-t' || a === '--table') {
      if (opts.mode === 'rule') fail(i, `the table is chosen by the "table" parameter; "${a}" is not allowed in a direct rule`);
      if (table) fail(i, 'the table is given twice');
      if (neg) fail(i - 1, `"!" cannot negate "${a}"`);
      value(oneOf(TABLES[opts.family], `expected a ${program} table`), i + 1, 'a table');
      table = true;
      i += 2;
      continue;
    }
    const cmd = (eb ? EB_COMMANDS : COMMANDS).find((c) => c.names.includes(a));
    if (cmd) {
      if (opts.mode === 'rule') fail(i, `the command and chain are chosen by firewalld; "${a}" is not allowed in a direct rule`);
      if (command) fail(i, 'a passthrough runs one command; this is a second one');
      if (neg) fail(i - 1, `"!" cannot negate "${a}"`);
      command = cmd;
      i++;
      // As iptables does: an optional positional is the next argument unless it starts with "-" or "!".
      const positional = () => i < args.length && !args[i]!.startsWith('-') && args[i] !== '!';
      if (cmd.chain === 'required') value(chain, i++, 'a chain name');
      else if (cmd.chain === 'optional' && positional()) value(chain, i++, 'a chain name');
      if (cmd.rest === 'rulenum' || (cmd.rest === 'rulenum?' && i < args.length && /^[0-9]+$/.test(args[i]!))) value(uint(65535, 'a rule number'), i++, 'a rule number');
      else if (cmd.rest === 'policy') value(oneOf(['ACCEPT', 'DROP'], 'expected a chain policy'), i++, 'a policy');
      else if (cmd.rest === 'chain') value(chain, i++, 'the new chain name');
      continue;
    }
    if (a === '-m' || a === '--match') {
      if (eb) fail(i, `${program} match modules are not allowed`);
      if (neg) fail(i - 1, `"!" cannot negate "${a}"`);
      const name = value(oneOf(Object.keys(MATCHES), 'expected an allowed match module'), i + 1, 'a match module');
      if (ruleAt < 0) ruleAt = i;
      loaded.push(...MATCHES[name]!);
      i += 2;
      continue;
    }
    if (a === '-j' || a === '--jump' || a === '-g' || a === '--goto') {
      if (target) fail(i, 'the target is given twice');
      if (neg) fail(i - 1, `"!" cannot negate "${a}"`);
      const jump = a === '-j' || a === '--jump';
      const t = value(
        (v) =>
          jump && Object.hasOwn(targets, v)
            ? null
            : // An all-capitals name is how iptables target extensions are named; iptables would load one.
              !CHAIN_RE.test(v) || !/[a-z]/.test(v)
              ? `expected ${jump ? `a target (${Object.keys(targets).join(', ')}) or ` : ''}a user chain name with at least one lower-case letter`
              : EXTENSION_NAMES.has(v.toLowerCase())
                ? `the name of a ${program} extension, which it could load as a target, is not allowed as a user chain`
                : null,
        i + 1,
        'a target',
      );
      target = jump && Object.hasOwn(targets, t) ? targets[t]! : [];
      if (ruleAt < 0) ruleAt = i;
      i += 2;
      continue;
    }
    const o = findOpt(base, a) ?? findOpt(loaded, a) ?? (target ? findOpt(target, a) : undefined);
    if (!o) {
      if (!eb && a.startsWith('--') && Object.values(MATCHES).some((m) => findOpt(m, a))) fail(i, `"${a}" needs its match module first ("-m MODULE" or "-p PROTOCOL")`);
      fail(i, whyNotOption(a, program));
    }
    if (neg && !o.negatable) fail(i - 1, `"!" cannot negate "${a}"`);
    if (ruleAt < 0) ruleAt = i;
    const vals = o.values ?? [];
    vals.forEach((check, k) => value(check, i + 1 + k, vals.length > 1 ? `${vals.length} values` : 'a value'));
    if (!eb && (a === '-p' || a === '--protocol') && !neg) {
      const m = PROTO_MATCH[args[i + 1]!];
      if (m) loaded.push(...MATCHES[m]!);
    }
    i += 1 + vals.length;
  }
  if (negate >= 0) fail(negate, '"!" must precede an option');
  if (opts.mode === 'passthrough') {
    if (!command) invalid(param, args, `a passthrough needs one command (${(eb ? EB_COMMANDS : COMMANDS).map((c) => c.names[0]).join(', ')})`);
    if (!command.rule && ruleAt >= 0) fail(ruleAt, `"${command.names[0]}" takes no rule specification`);
  }
}
