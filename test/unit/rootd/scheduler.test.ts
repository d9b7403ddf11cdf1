import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FairScheduler } from '../../../src/rootd/scheduler.ts';

/** A task that finishes when the test says so, recording when it started. */
function gate(log: string[], name: string) {
  let open!: () => void;
  const done = new Promise<void>((r) => (open = r));
  return { fn: async () => (log.push(name), await done, name), open };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('FairScheduler', () => {
  it('FairScheduler runs at most maxConcurrent tasks and gives free slots round-robin by uid', async () => {
    const s = new FairScheduler(() => ({ maxConcurrent: 2, maxQueuedPerUid: 100 }));
    const log: string[] = [];
    const a = Array.from({ length: 6 }, (_, i) => gate(log, `a${i}`));
    const b = gate(log, 'b0');
    const pa = a.map((g) => s.run(1, g.fn));
    await tick();
    const pb = s.run(2, b.fn);
    await tick();
    assert.deepEqual(log, ['a0', 'a1'], 'two slots, both taken by the first caller while it was alone');
    a[0]!.open();
    await pa[0];
    await tick();
    assert.deepEqual(log, ['a0', 'a1', 'b0'], "the other caller gets the next free slot, ahead of the first caller's queue");
    assert.deepEqual(s.load, { running: 2, waiting: 4 });
    for (const g of [...a, b]) g.open();
    assert.deepEqual(await Promise.all([...pa, pb]), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'b0']);
    assert.deepEqual(s.load, { running: 0, waiting: 0 });
  });

  it('FairScheduler keeps half the slots from one uid while another waits', async () => {
    const s = new FairScheduler(() => ({ maxConcurrent: 4, maxQueuedPerUid: 100 }));
    const log: string[] = [];
    const a = Array.from({ length: 6 }, (_, i) => gate(log, `a${i}`));
    const b = Array.from({ length: 2 }, (_, i) => gate(log, `b${i}`));
    const pa = a.map((g) => s.run(1, g.fn));
    const pb = b.map((g) => s.run(2, g.fn));
    await tick();
    assert.deepEqual(log, ['a0', 'a1', 'a2', 'a3'], 'alone, uid 1 may use every slot');
    a[0]!.open();
    await pa[0];
    await tick();
    a[1]!.open();
    await pa[1];
    await tick();
    // Plain round-robin would have given uid 1 its turn back (a4); with 2 of 4 slots it waits.
    assert.deepEqual(log, ['a0', 'a1', 'a2', 'a3', 'b0', 'b1']);
    for (const g of [...a, ...b]) g.open();
    await Promise.all([...pa, ...pb]);
  });

  it('FairScheduler takes an aborted task out of the queue and refuses past max_queued_per_uid', async () => {
    const s = new FairScheduler(() => ({ maxConcurrent: 1, maxQueuedPerUid: 2 }));
    const log: string[] = [];
    const first = gate(log, 'first');
    const p1 = s.run(1, first.fn);
    const ac = new AbortController();
    const p2 = s.run(1, async () => 'never', { signal: ac.signal });
    const p3 = s.run(1, async () => 'third');
    await assert.rejects(s.run(1, async () => 'over'), { code: 'rate-limited', message: /max_queued_per_uid 2/ });
    ac.abort(new Error('timed out'));
    await assert.rejects(p2, /timed out/);
    first.open();
    assert.equal(await p1, 'first');
    assert.equal(await p3, 'third');
  });

  it('FairScheduler runs identical shared calls once and hands every caller the result', async () => {
    const s = new FairScheduler(() => ({ maxConcurrent: 1, maxQueuedPerUid: 1 }));
    let runs = 0;
    const log: string[] = [];
    const g = gate(log, 'probe');
    const probe = () => (runs++, g.fn());
    // Queue limits do not apply to a call that joins one in progress.
    const ps = Array.from({ length: 50 }, (_, i) => s.run(i % 3, probe, { sharedKey: 'systeminfo\0get_info\0{}' }));
    g.open();
    assert.deepEqual(new Set(await Promise.all(ps)), new Set(['probe']));
    assert.equal(runs, 1);
    await s.run(0, probe, { sharedKey: 'systeminfo\0get_info\0{}' });
    assert.equal(runs, 2, 'a call after the shared one finished runs again: nothing is cached');
  });
  it('FairScheduler lets a caller joining a shared call that waits in another queue run it in its own turn', async () => {
    const s = new FairScheduler(() => ({ maxConcurrent: 2, maxQueuedPerUid: 100 }));
    const log: string[] = [];
    const a = Array.from({ length: 6 }, (_, i) => gate(log, `a${i}`));
    const pa = a.map((g) => s.run(1, g.fn));
    // uid 1 asks for a shared probe behind its own backlog; uid 2 asks for the same probe.
    const probe = async () => (log.push('probe'), 'probed');
    const p1 = s.run(1, probe, { sharedKey: 'k' });
    const p2 = s.run(2, probe, { sharedKey: 'k' });
    await tick();
    a[0]!.open();
    await pa[0];
    assert.equal(await p2, 'probed');
    assert.deepEqual(log, ['a0', 'a1', 'probe'], "uid 2's claim ran the probe in uid 2's turn, ahead of uid 1's backlog");
    assert.equal(await p1, 'probed', 'uid 1 gets the same result; its own claim is a no-op');
    for (const g of a) g.open();
    await Promise.all(pa);
    assert.deepEqual(log.filter((l) => l === 'probe'), ['probe'], 'the probe ran once');
  });
});
