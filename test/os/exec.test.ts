import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/os/exec.ts';
import { ErrorCodes, TuxsecError } from '../../src/protocol/errors.ts';
import { pidsWithCmdline, uniqueSleepSeconds, waitFor } from '../helpers/procs.ts';

// A shell is used here only to make a grandchild, the thing under test; never in product code.
const SH = '/bin/sh';
const grandchild = ['-c', 'sleep "$1" & wait', 'sh'];

describe('run (src/os/exec.ts)', () => {
  it('run ends the whole process group on abort: the grandchild is gone', async () => {
    const secs = uniqueSleepSeconds();
    const ac = new AbortController();
    const p = run(SH, [...grandchild, secs], { signal: ac.signal, timeoutMs: 600_000 });
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 1, 'the grandchild to start');
    ac.abort(new TuxsecError(ErrorCodes.cancelled, 'cancelled by the test'));
    await assert.rejects(p, (e: TuxsecError) => e.code === ErrorCodes.cancelled && /cancelled by the test/.test(e.message));
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 0, 'the grandchild to be gone');
  });

  it('run ends the whole process group on timeout and says it timed out', async () => {
    const secs = uniqueSleepSeconds();
    const r = await run(SH, [...grandchild, secs], { timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 0, 'the grandchild to be gone');
  });

  it('run kills a group that ignores SIGTERM after the grace period', async () => {
    const secs = uniqueSleepSeconds();
    const ac = new AbortController();
    const p = run(SH, ['-c', 'trap "" TERM; sleep "$1" & wait', 'sh', secs], { signal: ac.signal, timeoutMs: 600_000, killGraceMs: 300 });
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 1, 'the grandchild to start');
    ac.abort();
    await assert.rejects(p, (e: TuxsecError) => e.code === ErrorCodes.interrupted);
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 0, 'the grandchild to be gone');
  });

  it('run refuses an aborted signal before starting anything', async () => {
    const ac = new AbortController();
    ac.abort(new TuxsecError(ErrorCodes.cancelled, 'already'));
    await assert.rejects(run('/bin/true', [], { signal: ac.signal }), /already/);
  });

  it('run still gives a clean environment', async () => {
    process.env.TUXSEC_TEST_SECRET = 'x';
    const r = await run('/usr/bin/env', []);
    delete process.env.TUXSEC_TEST_SECRET;
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['LANG=C', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
  });
});
