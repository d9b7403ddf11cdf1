import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/os/exec.ts';

test('an ended group that is gone by close gets no delayed SIGKILL (its id could belong to another process by then)', async (t) => {
  const kill = t.mock.method(process, 'kill');
  const ac = new AbortController();
  const done = run('/usr/bin/sleep', ['30'], { signal: ac.signal, timeoutMs: 60_000, killGraceMs: 200 }).catch(() => undefined);
  // sleep dies on SIGTERM at once, so the whole group is gone when 'close' comes.
  setTimeout(() => ac.abort(), 100);
  await done;
  await new Promise((r) => setTimeout(r, 1000));
  const sigkills = kill.mock.calls.filter((c) => c.arguments[1] === 'SIGKILL');
  assert.deepEqual(sigkills.map((c) => c.arguments), []);
  assert.ok(kill.mock.calls.some((c) => c.arguments[1] === 'SIGTERM'), 'the group was sent SIGTERM');
});
