/**
 * Drives the rootd fuzzer against a real tuxsec-rootd: several connections at once, each a
 * fast-check run with its own seed, for a fixed time. A broken invariant is shrunk by fast-check
 * to a minimal case and reported with the seed that finds it again.
 */
import fc from 'fast-check';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { rssKiB } from '../helpers/raw.ts';
import { caseArb, describeCase, runCase, type RootdTarget, type Violation } from './rootd-fuzz.ts';

export interface FuzzReport {
  target: string;
  seed: number;
  seconds: number;
  cases: number;
  /** Requests (lines) or HTTP requests sent. */
  requests: number;
  crashes: number;
  failures: Array<{ seed: number; violation: Violation; reproducer: string; path: string | null }>;
  rssStartKiB: number;
  rssMaxKiB: number;
  rssEndKiB: number;
}

export async function fuzzRootd(opts: { seed: number; ms: number; workers?: number; log?: (s: string) => void }): Promise<FuzzReport> {
  const max = 16 * 1024;
  const maxDepth = 32;
  const config = {
    max_message_bytes: max,
    max_json_depth: maxDepth,
    log_level: 'warn',
    rate_limit: { requests_per_second: 1e6, burst: 1e6 },
    modules: { firewalld: { enabled: false } },
  };
  let d: RootdHandle = await startRootd({ config });
  let crashes = 0;
  const target: RootdTarget = {
    get socketPath() {
      return d.socketPath;
    },
    maxMessageBytes: max,
    maxDepth,
    alive: () => d.proc.exitCode === null && d.proc.signalCode === null,
    async restart() {
      d = await startRootd({ config });
    },
    pid: () => d.proc.pid!,
  };
  const rssStart = await rssKiB(target.pid());
  let rssMax = rssStart;
  const sampler = setInterval(() => {
    if (target.alive()) void rssKiB(target.pid()).then((v) => (rssMax = Math.max(rssMax, v)), () => {});
  }, 250);
  let cases = 0;
  let requests = 0;
  const failures: FuzzReport['failures'] = [];
  const started = Date.now();
  const workers = opts.workers ?? 8;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const seed = opts.seed + w;
      // The first broken invariant as it happened: a shrunk case may not break it again when it
      // depended on timing, and then this is what tells what went wrong.
      let first: { v: Violation; c: string } | null = null;
      const details = await fc.check(
        fc.asyncProperty(caseArb(max), async (c) => {
          cases++;
          requests += c.lines.length + (c.tail ? 1 : 0);
          const v = target.alive() ? await runCase(target, c) : { invariant: 'no crash', detail: 'tuxsec-rootd is not running' };
          if (!target.alive()) {
            crashes++;
            first ??= { v: { invariant: 'no crash', detail: `tuxsec-rootd died (${d.proc.exitCode ?? d.proc.signalCode}): ${d.log().slice(-2000)}` }, c: describeCase(c) };
            await target.restart();
            return false;
          }
          if (v && !first) first = { v, c: describeCase(c) };
          return v === null;
        }),
        { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: opts.ms, markInterruptAsFailure: false, endOnFailure: false },
      );
      if (details.failed && details.counterexample) {
        // Run the minimal case once more to report its own violation (fast-check keeps the last one run).
        const [c] = details.counterexample;
        const again = await runCase(target, c);
        const f = first as { v: Violation; c: string } | null;
        const v = again ?? (f ? { ...f.v, detail: `${f.v.detail} (did not happen again on the shrunk case: timing)` } : { invariant: 'unknown', detail: 'did not reproduce' });
        failures.push({ seed, violation: v, reproducer: again || !f ? describeCase(c) : f.c, path: details.counterexamplePath });
        opts.log?.(`rootd fuzz: seed ${seed} broke "${v.invariant}": ${v.detail}\n  minimal case: ${describeCase(c)}`);
      }
    }),
  );
  clearInterval(sampler);
  // Memory that comes back: give the daemon a moment idle, then measure.
  await new Promise((r) => setTimeout(r, 2000));
  const rssEnd = target.alive() ? await rssKiB(target.pid()) : 0;
  if (!target.alive()) crashes++;
  await d.stop();
  return {
    target: 'rootd',
    seed: opts.seed,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    cases,
    requests,
    crashes,
    failures,
    rssStartKiB: rssStart,
    rssMaxKiB: rssMax,
    rssEndKiB: rssEnd,
  };
}
