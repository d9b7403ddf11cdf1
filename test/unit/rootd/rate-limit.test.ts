import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../../src/rootd/rate-limit.ts';

test('RateLimiter gives each uid a burst, refills at its rate, and reports a run of refusals once it ends', () => {
  const l = new RateLimiter(2, 3);
  const ended: Array<[number, number]> = [];
  l.onRefusalsEnded = (uid, n) => ended.push([uid, n]);
  for (let i = 0; i < 3; i++) assert.equal(l.take(7, 0), true);
  assert.equal(l.take(7, 0), false);
  assert.equal(l.take(7, 100), false);
  assert.equal(l.refusedInARow(7), 2);
  // Another uid has its own bucket.
  assert.equal(l.take(8, 100), true);
  // 2 tokens a second: one is back after 500 ms.
  assert.equal(l.take(7, 500), true);
  assert.deepEqual(ended, [[7, 2]]);
  assert.equal(l.refusedInARow(7), 0);
});
