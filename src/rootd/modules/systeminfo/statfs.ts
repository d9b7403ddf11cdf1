/**
 * statfs(2) of many mount points without risking the daemon on a hung filesystem.
 *
 * A statfs on a dead network mount (or a stopped FUSE daemon) blocks in the kernel. In
 * rootd's process it would block a libuv pool thread for good: four of them and every
 * fs call of the daemon, audit writes included, waits behind them. So the calls run in
 * a short-lived child process that reports each answer as it comes, gives up on the
 * rest after PROBE_TIMEOUT_MS, and is killed, taking its blocked threads with it.
 * A mount that timed out is not probed again for UNRESPONSIVE_MS, so a hung mount costs
 * one child per minute, not one per request; concurrent calls share one child.
 */
import { run } from '../../../os/exec.ts';

export type StatfsResult =
  | { status: 'ok'; bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number }
  | { status: 'timeout' | 'error'; error: string };

/** How long the child waits for the answers, counted from its own start. */
export const PROBE_TIMEOUT_MS = 2000;
/** How long a mount that did not answer is reported as such without being asked again. */
export const UNRESPONSIVE_MS = 60_000;
/** Kill guard for a child that does not stop by itself (its own start is slow under load). */
const CHILD_KILL_MS = 20_000;

// Runs in the child (CommonJS, `node -e`). Every statfs is started at once on a pool
// sized for them, each answer is written unbuffered as one line `[index, ...]`. At the
// deadline the child kills itself: a normal exit would join the pool threads still
// blocked in the kernel and hang.
const CHILD = `
const fs = require('node:fs');
const paths = JSON.parse(fs.readFileSync(0, 'utf8'));
let left = paths.length;
const done = () => process.kill(process.pid, 'SIGKILL');
if (left === 0) done();
setTimeout(done, Number(process.env.TUXSEC_STATFS_TIMEOUT_MS)).unref();
paths.forEach((p, i) => fs.statfs(p, (err, s) => {
  fs.writeSync(1, JSON.stringify(err ? [i, String(err.code || err.message)] : [i, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree]) + '\\n');
  if (--left === 0) done();
}));
`;

const unresponsive = new Map<string, number>();
const inflight = new Map<string, Promise<Map<string, StatfsResult>>>();

function parse(stdout: string, paths: readonly string[]): Map<string, StatfsResult> {
  const out = new Map<string, StatfsResult>();
  for (const line of stdout.split('\n')) {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (!Array.isArray(v) || typeof v[0] !== 'number' || paths[v[0]] === undefined) continue;
    const p = paths[v[0]]!;
    if (v.length === 7 && v.slice(1).every((n) => typeof n === 'number')) {
      const [, bsize, blocks, bfree, bavail, files, ffree] = v as number[];
      out.set(p, { status: 'ok', bsize: bsize!, blocks: blocks!, bfree: bfree!, bavail: bavail!, files: files!, ffree: ffree! });
    } else {
      out.set(p, { status: 'error', error: `cannot read usage of "${p.slice(0, 256)}": ${String(v[1]).slice(0, 64)}` });
    }
  }
  return out;
}

async function probe(paths: readonly string[]): Promise<Map<string, StatfsResult>> {
  const threads = Math.min(Math.max(paths.length, 4), 64);
  const child = run(process.execPath, ['--no-warnings', '-e', CHILD], {
    input: JSON.stringify(paths),
    timeoutMs: CHILD_KILL_MS,
    maxOutputBytes: 1024 * 1024,
    env: { UV_THREADPOOL_SIZE: String(threads), TUXSEC_STATFS_TIMEOUT_MS: String(PROBE_TIMEOUT_MS) },
  });
  // A child stuck where even SIGKILL cannot end it never closes its pipes: stop waiting.
  let guard: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    child.catch(() => null),
    new Promise<null>((resolve) => (guard = setTimeout(() => resolve(null), CHILD_KILL_MS + 5000))),
  ]).finally(() => clearTimeout(guard));
  const got = r ? parse(r.stdout, paths) : new Map<string, StatfsResult>();
  const until = Date.now() + UNRESPONSIVE_MS;
  for (const p of paths) {
    if (got.has(p)) continue;
    got.set(p, { status: 'timeout', error: `cannot read usage of "${p.slice(0, 256)}": no answer within ${PROBE_TIMEOUT_MS} ms` });
    // Bounded like the mount list itself; past it a hung mount is only asked again sooner.
    if (unresponsive.size < 1024) unresponsive.set(p, until);
  }
  return got;
}

/**
 * statfs of each path, never throwing and never blocking a thread of this process.
 * Paths that recently timed out are reported as timed out without being asked again.
 */
export async function statfsMany(paths: readonly string[]): Promise<Map<string, StatfsResult>> {
  const now = Date.now();
  for (const [p, until] of unresponsive) if (until <= now) unresponsive.delete(p);
  const ask = paths.filter((p) => !unresponsive.has(p));
  const key = JSON.stringify(ask);
  let pending = inflight.get(key);
  if (!pending) {
    pending = ask.length ? probe(ask) : Promise.resolve(new Map());
    inflight.set(key, pending);
    void pending.finally(() => inflight.delete(key));
  }
  const got = new Map(await pending);
  for (const p of paths) {
    if (!got.has(p)) got.set(p, { status: 'timeout', error: `cannot read usage of "${p.slice(0, 256)}": it did not answer recently; asked again after ${UNRESPONSIVE_MS / 1000} s` });
  }
  return got;
}
