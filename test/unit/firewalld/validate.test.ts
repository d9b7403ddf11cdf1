// Property tests of the firewalld parameter checks (pure: no firewalld needed). Every property
// runs a counted number of cases; the last test asserts the total (issue 7: at least 10,000 per run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { P, checkPort, checkSource, checkRichRule, checkIpsetEntry } from '../../../src/rootd/modules/firewalld/validate.ts';
import { checkIptablesArgs } from '../../../src/rootd/modules/firewalld/iptables-args.ts';

let totalRuns = 0;
/** fast-check parameters with a fixed seed-independent count, added to the total. */
const runs = (numRuns: number) => {
  totalRuns += numRuns;
  return { numRuns };
};

const throwsInvalid = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (e) {
    return (e as { code?: string }).code === 'invalid-params';
  }
};
/** Refused with invalid-params, or accepted; anything else (a crash, another error) fails. */
const accepts = (fn: () => unknown): boolean => {
  try {
    fn();
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'invalid-params') return false;
    throw e;
  }
};

const names = { zone: P.zone(), service: P.service(), ipset: P.ipset(), policy: P.policy(), helper: P.helper(), interface: P.iface(), chain: P.chain(), icmpType: P.icmpType() };
const INJECT = [' ', ';', '\n', '\r', '\t', '$', '`', '"', "'", '|', '&', '<', '>', '(', ')', '\u0000', '/', '*', '\\', '\u202e', '\u2028', 'é', '\uff0d'];

test('name schemas refuse anything that could be an option, a shell word, a control character or non-ASCII', () => {
  for (const [what, schema] of Object.entries(names)) {
    const c = TypeCompiler.Compile(schema);
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom(...INJECT), fc.string({ maxLength: 40 }), (a, bad, b) => !c.Check(`${a}${bad}${b}`)),
      runs(400),
    );
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (a) => !c.Check(`-${a}`)), runs(150));
    // Whatever a name schema accepts is plain ASCII without a leading "-".
    fc.assert(fc.property(fc.string({ maxLength: 40, unit: 'binary' }), (s) => !c.Check(s) || /^[A-Za-z0-9_][\x21-\x7e]*$/.test(s)), runs(150));
    assert.equal(c.Check('-x'), false, `${what} refuses a leading "-"`);
    assert.equal(c.Check('x'.repeat(100 * 1024)), false, `${what} refuses 100 KiB`);
  }
});

test('every free-text schema (rich rule, direct args, lockdown command) refuses control characters', () => {
  const rule = TypeCompiler.Compile(P.rule());
  const args = TypeCompiler.Compile(P.args());
  const command = TypeCompiler.Compile(P.command());
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), fc.integer({ min: 0, max: 31 }), fc.string({ maxLength: 30 }), (a, code, b) => {
      const s = `${a}${String.fromCharCode(code)}${b}`;
      return !rule.Check(`rule ${s} accept`) && !args.Check(['-s', s]) && !command.Check(`/usr/bin/${s}`);
    }),
    runs(600),
  );
  fc.assert(fc.property(fc.string({ maxLength: 40, unit: 'binary' }), (s) => !command.Check(s) || /^\/[A-Za-z0-9_./@+=:,% -]*\*?$/.test(s)), runs(400));
});

test('checkPort accepts exactly 1..65535 with an ordered range', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 70000 }), fc.constantFrom('tcp', 'udp', 'sctp', 'dccp'), (a, b, proto) => {
      const ok = a >= 1 && a <= 65535 && b >= 1 && b <= 65535 && a <= b;
      const v = `${a}-${b}/${proto}`;
      if (ok) {
        const r = checkPort('port', v);
        return r.protocol === proto && r.port === `${a}-${b}`;
      }
      return throwsInvalid(() => checkPort('port', v));
    }),
    runs(800),
  );
});

test('checkSource accepts addresses and CIDRs with valid prefixes and refuses the rest', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 40 }), (ip, prefix) => {
      const v = `${ip}/${prefix}`;
      return prefix <= 32 ? !throwsInvalid(() => checkSource('source', v)) : throwsInvalid(() => checkSource('source', v));
    }),
    runs(500),
  );
  fc.assert(
    fc.property(fc.ipV6(), fc.integer({ min: 0, max: 140 }), (ip, prefix) => {
      const v = `${ip}/${prefix}`;
      return prefix <= 128 ? !throwsInvalid(() => checkSource('source', v)) : throwsInvalid(() => checkSource('source', v));
    }),
    runs(500),
  );
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => accepts(() => checkSource('source', s)) || true), runs(300));
  for (const good of ['10.0.0.1', 'fe80::1', '00:11:22:33:44:55', 'ipset:blocklist']) assert.doesNotThrow(() => checkSource('source', good));
  for (const bad of ['10.0.0.256', '10.0.0.1/8/8', '1.2.3', '::g']) assert.ok(throwsInvalid(() => checkSource('source', bad)), bad);
});

/** Rich rules built from firewalld's grammar: always accepted. */
const richRule = fc
  .tuple(
    fc.constantFrom('ipv4', 'ipv6'),
    fc.option(fc.ipV4(), { nil: undefined }),
    fc.oneof(
      fc.constantFrom('ssh', 'http', 'dns').map((s) => `service name="${s}"`),
      fc.integer({ min: 1, max: 65535 }).map((p) => `port port="${p}" protocol="tcp"`),
    ),
    fc.option(fc.stringMatching(/^[A-Za-z0-9 :;$|&<>()-]{1,20}$/), { nil: undefined }),
    fc.constantFrom('accept', 'drop', 'reject', 'mark set=1'),
    fc.boolean(),
  )
  .map(([fam, src, el, prefix, action, quoted]) =>
    [
      'rule',
      quoted ? `family="${fam}"` : `family=${fam}`,
      src ? `source address="${src}"` : '',
      el,
      prefix !== undefined ? `log prefix="${prefix}" level="info"` : '',
      action,
    ]
      .filter(Boolean)
      .join(' '),
  );

test('checkRichRule accepts rules of firewalld grammar and refuses shell characters, options and non-ASCII outside quotes', () => {
  fc.assert(fc.property(richRule, (r) => checkRichRule('rule', r) === r), runs(1000));
  fc.assert(
    fc.property(richRule, fc.constantFrom(';reboot', '$(id)', '`id`', '|id', '&&id', '>x', ' --permanent', ' -j ACCEPT', 'é', '\u202e', ' "', ' ='), (r, bad) =>
      throwsInvalid(() => checkRichRule('rule', `${r}${bad}`)),
    ),
    runs(1000),
  );
  // Arbitrary text: refused or accepted, never another error; accepted text is printable ASCII.
  fc.assert(
    fc.property(fc.string({ maxLength: 80, unit: 'binary' }), (s) => !accepts(() => checkRichRule('rule', `rule ${s}`)) || /^[\x20-\x7e]*$/.test(s)),
    runs(500),
  );
  assert.ok(throwsInvalid(() => checkRichRule('rule', 'accept')));
  assert.ok(throwsInvalid(() => checkRichRule('rule', 'rule family="ipv4 accept')));
  assert.doesNotThrow(() => checkRichRule('rule', 'rule family="ipv4" source address="10.0.0.0/8" accept'));
});

test('checkIpsetEntry accepts addresses, nets, MACs, ports and ranges, refuses garbage', () => {
  for (const good of ['10.0.0.1', '10.0.0.0/8', 'fe80::/64', '00:11:22:33:44:55', '10.0.0.1,tcp:80', '10.0.0.1-10.0.0.9', '10.0.0.1,eth0']) {
    assert.doesNotThrow(() => checkIpsetEntry('entry', good), good);
  }
  for (const bad of ['10.0.0.0/33', '10.0.0.1,', '10.0.0.999', '70000']) assert.ok(throwsInvalid(() => checkIpsetEntry('entry', bad)), bad);
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), (ip, port) => !throwsInvalid(() => checkIpsetEntry('entry', `${ip},tcp:${port}`))), runs(300));
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => accepts(() => checkIpsetEntry('entry', s)) || true), runs(300));
});

/** Direct rule arguments built from the allowlist: always accepted. */
const ruleArgs = fc
  .tuple(
    fc.option(fc.tuple(fc.boolean(), fc.ipV4(), fc.integer({ min: 0, max: 32 })), { nil: undefined }),
    fc.option(fc.tuple(fc.constantFrom('tcp', 'udp'), fc.integer({ min: 1, max: 65535 })), { nil: undefined }),
    fc.option(fc.constantFrom('NEW', 'ESTABLISHED,RELATED', 'INVALID'), { nil: undefined }),
    fc.option(fc.stringMatching(/^[A-Za-z0-9 _.:,/@+=()[\]][A-Za-z0-9 _.:,/@+=()[\]-]{0,19}$/), { nil: undefined }),
    fc.constantFrom(['-j', 'ACCEPT'], ['-j', 'DROP'], ['-j', 'REJECT', '--reject-with', 'tcp-reset'], ['-j', 'LOG', '--log-prefix', 'tsx: '], ['-j', 'tsx_chain']),
  )
  .map(([src, port, state, comment, target]) => [
    ...(src ? [...(src[0] ? ['!'] : []), '-s', `${src[1]}/${src[2]}`] : []),
    ...(port ? ['-p', port[0], '--dport', String(port[1])] : []),
    ...(state ? ['-m', 'conntrack', '--ctstate', state] : []),
    ...(comment ? ['-m', 'comment', '--comment', comment] : []),
    ...target,
  ]);

/** Every way getopt would read the table or a modprobe program out of one argument. */
const smuggled = fc.oneof(
  fc.constantFrom('-t', '--table', '-M', '--modprobe').chain((o) => fc.constantFrom([o, 'nat'], [o, '/tmp/x'])),
  fc.integer({ min: 3, max: 7 }).map((n) => [`${'--table'.slice(0, n)}=nat`]),
  fc.integer({ min: 3, max: 10 }).map((n) => [`${'--modprobe'.slice(0, n)}=/tmp/x`]),
  fc.integer({ min: 3, max: 7 }).map((n) => ['--table'.slice(0, n), 'nat']),
  fc.integer({ min: 3, max: 10 }).map((n) => ['--modprobe'.slice(0, n), '/tmp/x']),
  fc.tuple(fc.stringMatching(/^[vnxcw]{0,3}$/), fc.constantFrom('t', 'M'), fc.constantFrom('', 'nat', '/tmp/x')).map(([pre, o, v]) => (v ? [`-${pre}${o}${v}`] : [`-${pre}${o}`, 'nat'])),
);

test('checkIptablesArgs accepts rules built from the allowlist', () => {
  fc.assert(
    fc.property(ruleArgs, (args) => {
      checkIptablesArgs('args', args, { mode: 'rule', family: 'ipv4' });
      checkIptablesArgs('args', ['-t', 'filter', '-A', 'INPUT', ...args], { mode: 'passthrough', family: 'ipv4' });
      return true;
    }),
    runs(1000),
  );
});

test('checkIptablesArgs refuses a table or modprobe option in any getopt spelling, anywhere', () => {
  fc.assert(
    fc.property(ruleArgs, smuggled, fc.nat(), fc.constantFrom('rule', 'passthrough'), (args, bad, pos, mode) => {
      const base = mode === 'passthrough' ? ['-A', 'INPUT', ...args] : args;
      // Between whole options only: at a value position the smuggled text is a (refused) value anyway.
      const cuts = [0, ...base.map((a, i) => (a.startsWith('-') || a === '!' ? i : -1)).filter((i) => i > 0), base.length];
      const at = cuts[pos % cuts.length]!;
      const withBad = [...base.slice(0, at), ...bad, ...base.slice(at)];
      const legalTable = mode === 'passthrough' && (bad[0] === '-t' || bad[0] === '--table') && bad[1] === 'nat';
      return legalTable || throwsInvalid(() => checkIptablesArgs('args', withBad, { mode: mode as 'rule', family: 'ipv4' }));
    }),
    runs(2000),
  );
});

test('checkIptablesArgs on arbitrary arguments: refused or accepted, and what it accepts has no attached, clustered or abbreviated option', () => {
  const vocab = fc.oneof(
    fc.constantFrom('-A', 'INPUT', '-s', '10.0.0.1', '-j', 'ACCEPT', '-p', 'tcp', '--dport', '22', '!', '-m', 'comment', '--comment', 'x', '-t', 'nat', '--tab', '-tnat', '-M', '--mod', '-vt'),
    fc.string({ maxLength: 12 }),
  );
  fc.assert(
    fc.property(fc.array(vocab, { minLength: 1, maxLength: 12 }), fc.constantFrom('rule', 'passthrough'), fc.constantFrom('ipv4', 'ipv6', 'eb'), (args, mode, family) => {
      if (!accepts(() => checkIptablesArgs('args', args, { mode: mode as 'rule', family: family as 'eb' }))) return true;
      return args.every(
        (a) =>
          // firewalld quotes for iptables-restore without escaping and rewrites %%NAME%% placeholders.
          !/["'\\%`$]/.test(a) &&
          (!a.startsWith('-') || (!a.includes('=') && (a.startsWith('--') || a.length === 2) && !/^--(t|ta|tab|tabl|m|mo|mod|modp|modpr|modpro|modprob|modprobe)$/.test(a) && a !== '-M')),
      );
    }),
    runs(1500),
  );
});

test('checkIptablesArgs refuses a comment or log prefix holding a quote, backslash or "%" anywhere, naming that argument', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[A-Za-z0-9 _.:,]{0,12}$/),
      fc.constantFrom('"', "'", '\\', '%', '%%LOGTYPE%%', '" -j NFQUEUE "', '`', '$'),
      fc.stringMatching(/^[A-Za-z0-9 _.:,]{0,12}$/),
      fc.boolean(),
      (a, bad, b, log) => {
        const v = `${a}${bad}${b}`;
        const args = log ? ['-j', 'LOG', '--log-prefix', v.slice(0, 29)] : ['-m', 'comment', '--comment', v, '-j', 'ACCEPT'];
        try {
          checkIptablesArgs('args', args, { mode: 'rule', family: 'ipv4' });
        } catch (e) {
          return (e as { details?: { parameter?: string } }).details?.parameter === 'args[3]';
        }
        return false;
      },
    ),
    runs(1000),
  );
});

test('the properties above ran at least 10,000 cases in total', () => {
  assert.ok(totalRuns >= 10_000, `property cases this run: ${totalRuns}, at least 10,000 required`);
});
