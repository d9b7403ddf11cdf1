// The iptables argument allowlist of direct rules and passthroughs (pure: no firewalld needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkIptablesArgs, type ArgsFamily, type ArgsMode } from '../../../src/rootd/modules/firewalld/iptables-args.ts';

const check = (args: string[], mode: ArgsMode = 'passthrough', family: ArgsFamily = 'ipv4') => checkIptablesArgs('args', args, { mode, family });
const refused = (args: string[], mode: ArgsMode = 'passthrough', family: ArgsFamily = 'ipv4'): { message: string; parameter: string } => {
  try {
    check(args, mode, family);
  } catch (e) {
    const err = e as { code?: string; message: string; details?: { parameter?: string } };
    assert.equal(err.code, 'invalid-params', err.message);
    return { message: err.message, parameter: err.details?.parameter ?? '' };
  }
  assert.fail(`accepted ${JSON.stringify(args)}`);
};

test('checkIptablesArgs accepts ordinary rules and passthroughs', () => {
  const rules = [
    ['-s', '192.0.2.1', '-j', 'ACCEPT'],
    ['-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
    ['!', '-s', '10.0.0.0/8', '-p', 'udp', '!', '--sport', '1024:65535', '-j', 'DROP'],
    ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    ['-m', 'multiport', '--dports', '80,443,8000:8080', '-m', 'comment', '--comment', 'web servers', '-j', 'ACCEPT'],
    ['-m', 'limit', '--limit', '5/minute', '--limit-burst', '10', '-j', 'LOG', '--log-prefix', 'tuxsec: ', '--log-level', 'info'],
    ['-i', 'eth+', '-o', 'wg0', '-j', 'REJECT', '--reject-with', 'icmp-host-prohibited'],
    ['-m', 'mark', '--mark', '0x1/0xff', '-j', 'MARK', '--set-mark', '0x2'],
    ['-m', 'set', '--match-set', 'blocklist', 'src', '-j', 'DROP'],
    ['-j', 'tsx_chain'],
    ['-p', 'icmp', '--icmp-type', 'echo-request', '-j', 'ACCEPT'],
  ];
  for (const r of rules) assert.doesNotThrow(() => check(r, 'rule'), JSON.stringify(r));
  const passthroughs = [
    ['-t', 'filter', '-I', 'INPUT', '-s', '192.0.2.2', '-j', 'ACCEPT'],
    ['-I', 'INPUT', '3', '-p', 'tcp', '--syn', '-j', 'DROP'],
    ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE'],
    ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', '10.0.0.2:8080'],
    ['-N', 'tsx_chain'],
    ['-X', 'tsx_chain'],
    ['-F'],
    ['-P', 'FORWARD', 'DROP'],
    ['-E', 'old_chain', 'new_chain'],
  ];
  for (const r of passthroughs) assert.doesNotThrow(() => check(r), JSON.stringify(r));
  assert.doesNotThrow(() => check(['-p', 'IPv4', '-s', '00:11:22:33:44:55', '-j', 'DROP'], 'rule', 'eb'));
  assert.doesNotThrow(() => check(['-t', 'broute', '-A', 'BROUTING', '-i', 'eth0', '-j', 'ACCEPT'], 'passthrough', 'eb'));
});

test('checkIptablesArgs refuses table smuggling in every getopt spelling, naming the argument', () => {
  const cases: [string[], string][] = [
    [['-tnat', '-A', 'POSTROUTING', '-j', 'ACCEPT'], 'args[0]'], // short option with attached value
    [['--tab=nat', '-A', 'POSTROUTING', '-j', 'ACCEPT'], 'args[0]'], // abbreviated long option, "=" form
    [['--tab', 'nat', '-A', 'POSTROUTING', '-j', 'ACCEPT'], 'args[0]'], // abbreviation
    [['--table=nat', '-A', 'POSTROUTING', '-j', 'ACCEPT'], 'args[0]'],
    [['-A', 'INPUT', '-vt', 'nat', '-j', 'ACCEPT'], 'args[2]'], // cluster
    [['-t', 'nat', '-t', 'mangle', '-A', 'INPUT'], 'args[2]'],
    [['-t', 'bogus', '-A', 'INPUT'], 'args[1]'],
  ];
  for (const [args, at] of cases) {
    const r = refused(args);
    assert.equal(r.parameter, at, JSON.stringify(args));
    assert.match(r.message, new RegExp(`"${args[Number(at.slice(5, -1))]!.replace(/[-]/g, '\\-')}"`), r.message);
  }
  for (const args of [['-t', 'nat', '-j', 'ACCEPT'], ['--table', 'nat', '-j', 'ACCEPT'], ['-tnat', '-j', 'ACCEPT'], ['--tab=nat', '-j', 'ACCEPT']]) {
    refused(args, 'rule');
  }
});

test('checkIptablesArgs refuses --modprobe and -M in every spelling', () => {
  for (const args of [
    ['--modprobe=/tmp/x', '-A', 'INPUT', '-j', 'ACCEPT'],
    ['--modprobe', '/tmp/x', '-A', 'INPUT', '-j', 'ACCEPT'],
    ['--mod=/tmp/x', '-A', 'INPUT', '-j', 'ACCEPT'],
    ['-M', '/tmp/x', '-A', 'INPUT', '-j', 'ACCEPT'],
    ['-M/tmp/x', '-A', 'INPUT', '-j', 'ACCEPT'],
    ['-A', 'INPUT', '-M', '/tmp/x'],
    ['-A', 'INPUT', '-vM', '/tmp/x'],
  ]) {
    const r = refused(args);
    assert.match(r.message, /not an allowed iptables option/, r.message);
  }
  assert.match(refused(['-M', '/tmp/x', '-j', 'ACCEPT'], 'rule').message, /"-M"/);
});

test('checkIptablesArgs refuses unknown modules, target extensions, bad values and stray words', () => {
  const cases: [string[], RegExp][] = [
    [['-A', 'INPUT', '-m', 'u32', '--u32', '0>>22', '-j', 'ACCEPT'], /match module/],
    [['-A', 'INPUT', '-m', '../../tmp/evil', '-j', 'ACCEPT'], /match module/],
    [['-A', 'INPUT', '-j', 'NFQUEUE'], /lower-case/],
    [['-A', 'INPUT', '-j', 'TEE', '--gateway', '10.0.0.1'], /lower-case/],
    [['-A', 'INPUT', '-s', 'evil.example.com', '-j', 'ACCEPT'], /addresses/],
    [['-A', 'INPUT', '-p', 'tcp', '--dport', '70000'], /port/],
    [['-A', 'INPUT', '--dport', '22'], /match module first/],
    [['-A', 'INPUT', '-j', 'LOG', '--log-prefix', '-j ACCEPT'], /not starting with "-"/],
    [['-A', 'INPUT', 'extra', '-j', 'ACCEPT'], /unexpected argument/],
    [['-A', 'INPUT', '-j', 'ACCEPT', '!'], /must precede/],
    [['-A', 'INPUT', '!', '-j', 'ACCEPT'], /cannot negate/],
    [['-A', 'INPUT', '-s'], /missing/],
    [['-A', 'INPUT', '-D', 'INPUT'], /one command/],
    [['-s', '10.0.0.1', '-j', 'ACCEPT'], /needs one command/],
    [['-N', 'x_chain', '-j', 'ACCEPT'], /no rule specification/],
    [['-A', 'INPUT', '-L'], /not an allowed/],
    [['-A', 'INPUT', '-w', '5'], /not an allowed/],
    [['-A', 'INPUT', '--', '-j'], /not an allowed/],
    [['-A', 'INPUT', '-m', 'tcp', '--dport=22'], /"--name=value"/],
  ];
  for (const [args, why] of cases) assert.match(refused(args).message, why, JSON.stringify(args));
  assert.match(refused(['-I', 'INPUT', '-j', 'ACCEPT'], 'rule').message, /command and chain are chosen by firewalld/);
  assert.match(refused(['-A', 'INPUT', '--atomic-file', '/tmp/x'], 'passthrough', 'eb').message, /not an allowed ebtables option/);
  assert.match(refused(['-A', 'INPUT', '-m', 'tcp'], 'passthrough', 'eb').message, /ebtables match modules/);
  assert.match(refused(['-C', 'INPUT', '1', '5'], 'passthrough', 'eb').message, /not an allowed ebtables option/);
});

test('checkIptablesArgs refuses a quote in a comment or log prefix that would end iptables-restore quoting and inject options', () => {
  // firewalld wraps an argument holding whitespace in "..." without escaping for iptables-restore.
  const inject = 'x" -j NFQUEUE --queue-num 7 -m comment --comment "y';
  const cases: [string[], string, ArgsMode][] = [
    [['-p', 'tcp', '--dport', '22', '-m', 'comment', '--comment', inject], 'args[7]', 'rule'],
    [['-A', 'INPUT', '-m', 'comment', '--comment', inject, '-j', 'ACCEPT'], 'args[5]', 'passthrough'],
    [['-A', 'INPUT', '-j', 'LOG', '--log-prefix', 'a" -j NFQUEUE "'], 'args[5]', 'passthrough'],
    [['-m', 'comment', '--comment', 'x"'], 'args[3]', 'rule'],
    [['-m', 'comment', '--comment', "it's"], 'args[3]', 'rule'],
    [['-m', 'comment', '--comment', 'a\\" b'], 'args[3]', 'rule'],
    [['-m', 'comment', '--comment', '$(id) `id`'], 'args[3]', 'rule'],
  ];
  for (const [args, at, mode] of cases) {
    const r = refused(args, mode);
    assert.equal(r.parameter, at, JSON.stringify(args));
    assert.match(r.message, /expected text of 1\.\.[0-9]+ characters from letters, digits, space/, r.message);
  }
  // Ordinary comments and prefixes still pass.
  assert.doesNotThrow(() => check(['-m', 'comment', '--comment', 'web: 10.0.0.0/8, port 443 (tuxsec) [no.1] a+b=c @x', '-j', 'ACCEPT'], 'rule'));
  assert.doesNotThrow(() => check(['-j', 'LOG', '--log-prefix', 'tuxsec drop: '], 'rule'));
});

test('checkIptablesArgs refuses firewalld %%PLACEHOLDER%% text in comments, log prefixes and addresses', () => {
  const placeholders = ['%%REJECT%%', '%%ICMP%%', '%%LOGTYPE%%', '%%ZONE_SOURCE%%', '%%ZONE_INTERFACE%%', '%%RICH_RULE_PRIORITY%%', '%%POLICY_PRIORITY%%'];
  for (const p of placeholders) {
    assert.equal(refused(['-m', 'comment', '--comment', p, '-j', 'ACCEPT'], 'rule').parameter, 'args[3]', p);
    assert.equal(refused(['-j', 'LOG', '--log-prefix', p], 'rule').parameter, 'args[3]', p);
    assert.equal(refused(['-A', 'INPUT', p], 'passthrough').parameter, 'args[2]', p);
    assert.equal(refused(['-j', p], 'rule').parameter, 'args[1]', p);
  }
  assert.equal(refused(['-m', 'comment', '--comment', '100%', '-j', 'ACCEPT'], 'rule').parameter, 'args[3]');
  // node's isIP accepts an IPv6 zone id; its "%" must not reach firewalld either.
  assert.equal(refused(['-s', 'fe80::1%eth0', '-j', 'ACCEPT'], 'rule', 'ipv6').parameter, 'args[1]');
  assert.equal(refused(['-m', 'iprange', '--src-range', 'fe80::1%eth0-fe80::2', '-j', 'ACCEPT'], 'rule', 'ipv6').parameter, 'args[3]');
});

test('checkIptablesArgs refuses jumps to lower-case extension targets (ebtables -j redirect, -j standard)', () => {
  const eb: [string[], string][] = [
    [['-t', 'nat', '-A', 'PREROUTING', '-j', 'redirect'], 'args[5]'],
    [['-t', 'nat', '-A', 'PREROUTING', '-j', 'dnat'], 'args[5]'],
    [['-t', 'nat', '-A', 'POSTROUTING', '-j', 'snat'], 'args[5]'],
    [['-A', 'INPUT', '-j', 'mark'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'arpreply'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'log'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'nflog'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'ulog'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'Redirect'], 'args[3]'],
    [['-A', 'INPUT', '-j', 'standard'], 'args[3]'],
  ];
  for (const [args, at] of eb) {
    const r = refused(args, 'passthrough', 'eb');
    assert.equal(r.parameter, at, JSON.stringify(args));
    assert.match(r.message, /ebtables extension/, r.message);
  }
  for (const name of ['standard', 'nfqueue', 'tee', 'mark', 'ct']) {
    assert.match(refused(['-j', name], 'rule').message, /iptables extension/, name);
    assert.match(refused(['-A', 'INPUT', '-g', name]).message, /iptables extension/, name);
  }
  // User chains that name no extension still work.
  assert.doesNotThrow(() => check(['-A', 'INPUT', '-j', 'tsx_chain'], 'passthrough', 'eb'));
  assert.doesNotThrow(() => check(['-j', 'tsx_chain'], 'rule'));
});
