/**
 * The fuzzing harness as CI runs it: about half a minute against each real daemon with a fixed seed,
 * so a run is repeatable. `npm run fuzz -- --minutes N` runs it longer with a fresh seed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzRootd } from './run-rootd.ts';
import { fuzzServer } from './run-server.ts';

const SEED = 20261202;

describe('fuzzing harness (fixed seed)', () => {
  it('rootd: one well-formed answer per request with its id, no crash, no hang, memory bounded', async () => {
    const r = await fuzzRootd({ seed: SEED, ms: 30_000, log: (s) => console.error(s) });
    console.log(`rootd fuzz: ${r.cases} cases, ${r.requests} request lines in ${r.seconds} s; RSS ${r.rssStartKiB} -> max ${r.rssMaxKiB} -> ${r.rssEndKiB} KiB`);
    assert.ok(r.cases > 200, `only ${r.cases} cases ran`);
    assert.deepEqual(r.failures.map((f) => `${f.violation.invariant}: ${f.violation.detail}\n${f.reproducer}`), []);
    assert.equal(r.crashes, 0);
    assert.ok(r.rssMaxKiB < 150 * 1024, `rootd RSS reached ${r.rssMaxKiB} KiB`);
  });

  it('tuxsec-server: no 5xx, nothing without credentials, every error in the project shape, no crash', async () => {
    const r = await fuzzServer({ seed: SEED, ms: 30_000, log: (s) => console.error(s) });
    console.log(`server fuzz: ${r.cases} requests in ${r.seconds} s; RSS ${r.rssStartKiB} -> max ${r.rssMaxKiB} -> ${r.rssEndKiB} KiB`);
    assert.ok(r.cases > 200, `only ${r.cases} requests ran`);
    assert.deepEqual(r.failures.map((f) => `${f.violation.invariant}: ${f.violation.detail}\n${f.reproducer}`), []);
    assert.equal(r.crashes, 0);
  });
});
