import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../../src/common/rate-limit.ts';

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

test('RateLimiter keyed by operator name: one caller empties only its own bucket; retryAfter says when a token is back', () => {
  // 6 a minute: one token every 10 s.
  const l = new RateLimiter<string>(6 / 60, 6);
  for (let i = 0; i < 6; i++) assert.equal(l.take('user:alice', 0), true);
  assert.equal(l.take('user:alice', 0), false);
  assert.equal(l.retryAfter('user:alice'), 10);
  assert.equal(l.take('user:bob', 0), true);
  assert.equal(l.retryAfter('user:bob'), 0);
  assert.equal(l.take('user:alice', 4000), false);
  assert.equal(l.retryAfter('user:alice'), 6);
  assert.equal(l.take('user:alice', 10_000), true);
  assert.equal(l.retryAfter('nobody'), 0);
});
