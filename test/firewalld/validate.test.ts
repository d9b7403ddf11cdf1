// Property tests of the firewalld parameter checks (pure: no firewalld needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { P, checkPort, checkSource, checkRichRule, checkIpsetEntry } from '../../src/rootd/modules/firewalld/validate.ts';

const throwsInvalid = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (e) {
    return (e as { code?: string }).code === 'invalid-params';
  }
};

const names = { zone: P.zone(), service: P.service(), ipset: P.ipset(), policy: P.policy(), helper: P.helper(), interface: P.iface(), chain: P.chain() };

test('name schemas refuse anything that could be an option, a shell word or a control character', () => {
  for (const [what, schema] of Object.entries(names)) {
    const c = TypeCompiler.Compile(schema);
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom(' ', ';', '\n', '$', '`', '"', "'", '|', '&', '\u0000', '/', '*'), fc.string({ maxLength: 40 }), (a, bad, b) => {
        return !c.Check(`${a}${bad}${b}`);
      }),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (a) => !c.Check(`-${a}`)));
    assert.equal(c.Check('-x'), false, `${what} refuses a leading "-"`);
    assert.equal(c.Check('x'.repeat(100 * 1024)), false, `${what} refuses 100 KiB`);
  }
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
    { numRuns: 500 },
  );
});

test('checkSource accepts addresses and CIDRs with valid prefixes and refuses the rest', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 40 }), (ip, prefix) => {
      const v = `${ip}/${prefix}`;
      return prefix <= 32 ? !throwsInvalid(() => checkSource('source', v)) : throwsInvalid(() => checkSource('source', v));
    }),
  );
  fc.assert(
    fc.property(fc.ipV6(), fc.integer({ min: 0, max: 140 }), (ip, prefix) => {
      const v = `${ip}/${prefix}`;
      return prefix <= 128 ? !throwsInvalid(() => checkSource('source', v)) : throwsInvalid(() => checkSource('source', v));
    }),
  );
  for (const good of ['10.0.0.1', 'fe80::1', '00:11:22:33:44:55', 'ipset:blocklist']) assert.doesNotThrow(() => checkSource('source', good));
  for (const bad of ['10.0.0.256', '10.0.0.1/8/8', '1.2.3', '::g']) assert.ok(throwsInvalid(() => checkSource('source', bad)), bad);
});

test('rich rules: the schema refuses control characters, checkRichRule refuses non-rules', () => {
  const c = TypeCompiler.Compile(P.rule());
  fc.assert(
    fc.property(fc.string({ maxLength: 50 }), fc.integer({ min: 0, max: 31 }), (s, code) => !c.Check(`rule ${s}${String.fromCharCode(code)}${s} accept`)),
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
});
