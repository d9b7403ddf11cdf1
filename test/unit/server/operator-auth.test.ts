/**
 * The pure parts of operators' authentication: password hashing and its limits, the login throttle,
 * the session cookie parser, audit redaction and CSV cells.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auditCsv, boundedParams, csvCell, MAX_PARAMS_BYTES, redact, REDACTED } from '../../../src/server/audit.ts';
import { FailureWindow, sessionCookie } from '../../../src/server/operator-auth.ts';
import { PasswordHasher, passwordProblem } from '../../../src/server/passwords.ts';

describe('PasswordHasher', () => {
  // Small N: these tests check the format and logic, not the cost.
  const h = new PasswordHasher(2, 2, 10);

  test('PasswordHasher hash stores its parameters and verifies only the right password', async () => {
    const stored = await h.hash('a long enough password');
    assert.match(stored, /^scrypt\$10\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    assert.equal(await h.verify('a long enough password', stored), true);
    assert.equal(await h.verify('a long enough passwore', stored), false);
    assert.equal(await h.verify('a long enough password', null), false);
    assert.equal(await h.verify('a long enough password', 'garbage'), false);
    assert.notEqual(await h.hash('a long enough password'), stored);
  });

  test('PasswordHasher outdated says when the stored parameters are weaker than today\'s', async () => {
    assert.equal(new PasswordHasher(1, 1, 11).outdated(await h.hash('a long enough password')), true);
    assert.equal(h.outdated(await h.hash('a long enough password')), false);
  });

  test('PasswordHasher refuses beyond its queue at once, with rate-limited', async () => {
    const small = new PasswordHasher(1, 1, 12);
    const rs = await Promise.allSettled([1, 2, 3, 4].map(() => small.verify('x'.repeat(12), null)));
    const refused = rs.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 2);
    assert.match(String((refused[0] as PromiseRejectedResult).reason.message), /too many logins at once/);
  });

  test('passwordProblem names what is wrong', () => {
    assert.equal(passwordProblem('x'.repeat(12)), null);
    assert.match(passwordProblem('short')!, /shorter than 12/);
    assert.match(passwordProblem('x'.repeat(1025))!, /longer than 1024/);
    assert.match(passwordProblem(`${'x'.repeat(12)}\n`)!, /control character/);
  });
});

test('FailureWindow waits after max failures until the oldest ages out, and stays bounded', () => {
  const w = new FailureWindow(3, 10_000, 5);
  for (const t of [0, 1000, 2000]) w.fail('a', t);
  assert.equal(w.retryAfter('a', 2000), 8);
  assert.equal(w.retryAfter('b', 2000), 0);
  assert.equal(w.retryAfter('a', 10_001), 0);
  w.clear('a');
  assert.equal(w.retryAfter('a', 2000), 0);
  for (let i = 0; i < 100; i++) w.fail(`k${i}`, 3000);
  assert.equal(w.size, 5);
});

test('attack: FailureWindow keeps a throttled key while made-up keys with fewer failures flood it', () => {
  const w = new FailureWindow(3, 60_000, 10);
  for (const t of [0, 1, 2]) w.fail('alice', t);
  w.fail('bob', 3);
  w.fail('bob', 4);
  // Thousands of made-up names, each failing once (or twice), all newer than alice's failures.
  for (let i = 0; i < 5000; i++) {
    w.fail(`made-up-${i}`, 10 + i);
    if (i % 7 === 0) w.fail(`made-up-${i}`, 10 + i);
  }
  assert.equal(w.size, 10);
  assert.ok(w.retryAfter('alice', 6000) > 0, 'the throttled name was forgotten');
  // bob (2 failures) outranks every made-up name with 1; among those with 2, the newest are kept.
  assert.equal(w.retryAfter('bob', 6000), 0);
  w.fail('bob', 6000);
  assert.ok(w.retryAfter('bob', 6000) > 0, 'bob\'s earlier failures were forgotten');
});

test('FailureWindow forgets keys whose failures aged out first, then the least failed, oldest first', () => {
  const w = new FailureWindow(3, 10_000, 3);
  for (const t of [0, 1, 2]) w.fail('old', t); // throttled once, nothing of it live at t = 20 000
  for (const t of [15_000, 15_001]) w.fail('two', t);
  w.fail('one', 15_002);
  w.fail('new', 20_000);
  // 'old' went, though it had the most failures: none of them counts any more.
  assert.equal(w.size, 3);
  // Full again: 'one' goes (1 failure), not 'two' (2 failures), though 'two' failed last before it.
  w.fail('newer', 20_001);
  assert.equal(w.size, 3);
  w.fail('two', 20_002);
  assert.ok(w.retryAfter('two', 20_002) > 0, 'two lost its earlier failures');
});

test('sessionCookie takes only a well-formed __Host-tuxsec_session value, never the unprefixed name', () => {
  const id = 'a'.repeat(43);
  const other = 'b'.repeat(43);
  assert.equal(sessionCookie(`x=1; __Host-tuxsec_session=${id}; y=2`), id);
  // A cookie without the prefix may have been set by a neighbour (another port, plain HTTP): ignored.
  assert.equal(sessionCookie(`tuxsec_session=${id}`), null);
  assert.equal(sessionCookie(`tuxsec_session=${other}; __Host-tuxsec_session=${id}`), id);
  assert.equal(sessionCookie('__Host-tuxsec_session=short'), null);
  assert.equal(sessionCookie(`__Host-tuxsec_session=${id}x`), null);
  assert.equal(sessionCookie(undefined), null);
  assert.equal(sessionCookie(`a=${'x'.repeat(9000)}; __Host-tuxsec_session=${id}`), null);
});

describe('audit', () => {
  test('redact replaces secret-named values at any depth and keeps the rest', () => {
    const r = redact({ password: 'p', api_key: 'k', apiKey: 'k', nested: { token: 't', private_key: 'x', zone: 'public', list: [{ secret: 's' }] }, port: 80, key: 'k' }) as Record<string, unknown>;
    assert.deepEqual(r, { password: REDACTED, api_key: REDACTED, apiKey: REDACTED, nested: { token: REDACTED, private_key: REDACTED, zone: 'public', list: [{ secret: REDACTED }] }, port: 80, key: REDACTED });
  });

  test('redact keeps a "__proto__" key an own property', () => {
    const r = redact(JSON.parse('{"__proto__": {"polluted": 1}}')) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.hasOwn(r, '__proto__'));
  });

  test('boundedParams keeps entries small', () => {
    const big = boundedParams({ a: 'x'.repeat(100_000), b: Array.from({ length: 1000 }, (_, i) => ({ i, s: 'y'.repeat(500) })) });
    assert.ok(JSON.stringify(big).length <= MAX_PARAMS_BYTES + 100);
  });

  test('csvCell quotes every cell and defuses formulas', () => {
    assert.equal(csvCell('plain'), '"plain"');
    assert.equal(csvCell('a "b", c'), '"a ""b"", c"');
    for (const f of ['=1+1', '+1', '-1', '@SUM(A1)', '\t=1', '\r=1']) assert.equal(csvCell(f).startsWith(`"'`), true, f);
    // Full-width = + - @ (U+FF1D U+FF0B U+FF0D U+FF20), a bare tab or carriage return: prefixed too.
    for (const f of ['\uFF1D1+1', '\uFF0B1', '\uFF0D1', '\uFF20SUM(A1)', '\t', '\r', '\tcmd', '\rcmd']) assert.equal(csvCell(f), `"'${f}"`, JSON.stringify(f));
    // Only the first character counts.
    for (const f of ['a\uFF1D1', '1\uFF0B1', 'x\t']) assert.equal(csvCell(f), `"${f}"`, JSON.stringify(f));
    assert.equal(csvCell({ a: 1 }), '"{""a"":1}"');
    assert.equal(csvCell(null), '""');
    const csv = auditCsv([{ id: 1, at: 0, actor: '=cmd', actorKind: 'user', action: 'x', agents: ['a', 'b'], params: { p: '-2' }, result: 'ok', ip: null }]);
    assert.equal(csv.split('\r\n')[1], `"1","1970-01-01T00:00:00.000Z","'=cmd","user","x","a b","{""p"":""-2""}","ok",""`);
  });
});
