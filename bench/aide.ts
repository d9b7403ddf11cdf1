// The aide module's `check` through the real rootd against aide run directly on the same tree
// (issue 10): the overhead ratio of the whole path (start, aide, the JSON report parsed, the
// caller's wait) and of the operation alone; and requests/s of `systeminfo get_hostname` on
// another connection while a check runs, against no check. Runs alternate, so a shared machine's
// drift shows as spread rather than as a difference.
// Run: npm run bench -- aide (as root; needs aide). BENCH_FILES sets the tree's size, BENCH_RUNS the runs of each.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { RootdClient } from '../src/client/rootd-client.ts';
import { startRootd } from '../test/helpers/rootd.ts';
import { RATE_HEADER, med, rateRatio, rateRow, sequential, spread, type Rate } from './get-hostname.ts';

const FILES = Number(process.env.BENCH_FILES ?? 20_000);
const PER_DIR = 100;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const RATE_ROUNDS = 3;
const AIDE = '/usr/bin/aide';

const work = mkdtempSync(path.join(tmpdir(), 'tuxsec-aidebench-'));
const tree = path.join(work, 'tree');
for (let i = 0; i < FILES; i++) {
  const dir = path.join(tree, `d${Math.floor(i / PER_DIR)}`);
  if (i % PER_DIR === 0) mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `f${i % PER_DIR}`), randomBytes(1024));
}
mkdirSync(path.join(work, 'db'));
const config = path.join(work, 'aide.conf');
writeFileSync(config, [`database_in=file:${work}/db/aide.db`, `database_out=file:${work}/db/aide.db.new`, 'gzip_dbout=yes', `${tree} p+u+g+s+m+sha256`, ''].join('\n'));

/** aide as the module runs it (the same arguments, its JSON report to a file), straight from here: wall ms. */
function direct(): Promise<number> {
  const args = [`--config=${config}`, '--check', '--after=report_level=changed_attributes', '--after=report_format=json', `--after=report_url=file:${work}/direct.json`];
  const t0 = performance.now();
  const p = spawn(AIDE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) =>
    // 0 to 7 say which differences aide found; above that it failed.
    p.on('close', (code) => (code !== null && code <= 7 ? resolve(performance.now() - t0) : reject(new Error(`aide exited with ${code}: ${err}`)))),
  );
}

const d = await startRootd({
  config: {
    log_level: 'error',
    modules: { firewalld: { enabled: false }, aide: { settings: { config, report_file: path.join(work, 'last.json') } } },
    rate_limit: { requests_per_second: 1e7, burst: 1e7 },
  },
});
const client = new RootdClient({ socketPath: d.socketPath, timeoutMs: 600_000 });

/** The check through rootd as tuxsec-cli and the agent run it (start, then wait): caller's wall ms and the operation's own. */
async function throughRootd(during?: (id: string) => Promise<void>): Promise<{ wall: number; op: number }> {
  const t0 = performance.now();
  const started = await client.start('aide', 'check');
  if (!('operation' in started)) throw new Error('aide check did not start as an operation');
  await during?.(started.operation.id);
  await client.waitForOperation(started.operation);
  const wall = performance.now() - t0;
  const st = await client.operationStatus(started.operation.id);
  return { wall, op: Date.parse(st.finished_at!) - Date.parse(st.started_at) };
}

try {
  await client.execute('aide', 'init');
  // A few differences, so both report something.
  for (let i = 0; i < 10; i++) writeFileSync(path.join(tree, `d${i}`, 'f0'), randomBytes(1024));
  await direct(); // warm the page cache for both
  const directMs: number[] = [];
  const rootd: Array<{ wall: number; op: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    directMs.push(await direct());
    rootd.push(await throughRootd());
  }
  const wall = rootd.map((r) => r.wall);
  const op = rootd.map((r) => r.op);
  const fmt = (xs: number[]) => xs.map((x) => Math.round(x)).join(', ');

  // The busy window stays inside a check: shorter than the fastest check run.
  const windowMs = Math.max(200, Math.round(Math.min(...directMs) * 0.7));
  const rate: Record<'idle' | 'busy', Rate[]> = { idle: [], busy: [] };
  await sequential(d.socketPath, windowMs); // warm-up
  for (let i = 0; i < RATE_ROUNDS; i++) {
    rate.idle.push(await sequential(d.socketPath, windowMs));
    await throughRootd(async () => void rate.busy.push(await sequential(d.socketPath, windowMs)));
  }

  const load = loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(
    [
      `## aide check: ${FILES.toLocaleString('en')} files of 1 KiB, p+u+g+s+m+sha256, 10 changed (${RUNS} runs each, alternating; node ${process.version}; load average ${load}; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}, which only slows node starts, none timed here)\n`,
      '| path | ms per run | median ms | spread | overhead vs direct |',
      '| --- | --- | ---: | ---: | ---: |',
      `| aide run directly (the module's arguments) | ${fmt(directMs)} | ${Math.round(med(directMs))} | ${(spread(directMs) * 100).toFixed(0)}% | 1.00 |`,
      `| rootd aide check, the operation (started_at to finished_at: aide, report parsed, last report written) | ${fmt(op)} | ${Math.round(med(op))} | ${(spread(op) * 100).toFixed(0)}% | ${(med(op) / med(directMs)).toFixed(2)} (${Math.round(med(op) - med(directMs))} ms) |`,
      `| rootd aide check, the caller's wall time (RootdClient start + wait, as tuxsec-cli execute; status polled every 500 ms) | ${fmt(wall)} | ${Math.round(med(wall))} | ${(spread(wall) * 100).toFixed(0)}% | ${(med(wall) / med(directMs)).toFixed(2)} (${Math.round(med(wall) - med(directMs))} ms) |`,
      `\n## get_hostname on another connection while an aide check runs (${RATE_ROUNDS} rounds of ${windowMs} ms each, alternating)\n`,
      ...RATE_HEADER,
      rateRow('no check', rate.idle),
      rateRow('aide check running', rate.busy),
      `\n${rateRatio(rate.idle, rate.busy)}`,
    ].join('\n'),
  );
} finally {
  client.close();
  await d.stop();
  rmSync(work, { recursive: true, force: true });
}
