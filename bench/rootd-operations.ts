// rootd while a long-running operation runs (issue 10): requests/s and latency of `systeminfo
// get_hostname` on another connection, idle against with an operation running (the test
// plugin's `loop`, which reports progress every 50 ms until cancelled). Rounds alternate idle and
// busy, so drift of a shared machine shows as spread within a column rather than as a difference.
// Run: npm run bench -- rootd-operations (as root).
import net from 'node:net';
import { RootdClient } from '../src/client/rootd-client.ts';
import { pluginDir, writeLongRunningPlugin } from '../test/helpers/plugin.ts';
import { startRootd } from '../test/helpers/rootd.ts';

const ROUND_MS = Number(process.env.BENCH_MS ?? 2000);
const ROUNDS = 3;
const LINE = JSON.stringify({ type: 'execute_command', request_id: 'b', data: { module: 'systeminfo', action: 'get_hostname', parameters: {} } }) + '\n';

/** One persistent connection, one request at a time, for ROUND_MS: requests/s and sorted latencies. */
async function sequential(sock: string): Promise<{ rps: number; lat: number[] }> {
  const s = net.createConnection(sock);
  await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
  let buf = '';
  let wake: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf += d.toString();
    if (buf.includes('\n')) wake?.();
  });
  const lat: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < ROUND_MS) {
    const t = performance.now();
    await new Promise<void>((res) => {
      wake = res;
      s.write(LINE);
    });
    buf = buf.slice(buf.indexOf('\n') + 1);
    lat.push(performance.now() - t);
  }
  s.destroy();
  return { rps: lat.length / ((performance.now() - t0) / 1000), lat: lat.sort((a, b) => a - b) };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const plugins = pluginDir();
writeLongRunningPlugin(plugins);
const d = await startRootd({
  config: { plugins_dir: plugins, log_level: 'error', modules: { firewalld: { enabled: false } }, rate_limit: { requests_per_second: 1e7, burst: 1e7 } },
});
const client = new RootdClient({ socketPath: d.socketPath });
try {
  const rows: Record<'idle' | 'busy', Array<{ rps: number; lat: number[] }>> = { idle: [], busy: [] };
  await sequential(d.socketPath); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    rows.idle.push(await sequential(d.socketPath));
    const started = await client.start('longmod', 'loop');
    if (!('operation' in started)) throw new Error('loop did not start as an operation');
    rows.busy.push(await sequential(d.socketPath));
    const st = await client.operationCancel(started.operation.id);
    if (st.state !== 'cancelled') throw new Error(`operation ended ${st.state}`);
  }
  const out = [
    `## get_hostname on another connection while a long operation runs (${ROUNDS} rounds of ${ROUND_MS / 1000} s each, alternating; node ${process.version})\n`,
    '| condition | requests/s per round | median requests/s | median p50 ms | median p99 ms |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  for (const k of ['idle', 'busy'] as const) {
    const r = rows[k];
    out.push(
      `| ${k === 'idle' ? 'no operation' : 'longmod loop running'} | ${r.map((x) => Math.round(x.rps).toLocaleString('en')).join(', ')} | ${Math.round(med(r.map((x) => x.rps))).toLocaleString('en')} | ${med(r.map((x) => pct(x.lat, 50))).toFixed(3)} | ${med(r.map((x) => pct(x.lat, 99))).toFixed(3)} |`,
    );
  }
  const ratio = med(rows.busy.map((x) => x.rps)) / med(rows.idle.map((x) => x.rps));
  const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / med(xs);
  out.push(
    `\nbusy/idle: ${(ratio * 100).toFixed(1)}% (round-to-round spread: idle ${(spread(rows.idle.map((x) => x.rps)) * 100).toFixed(1)}%, busy ${(spread(rows.busy.map((x) => x.rps)) * 100).toFixed(1)}%)`,
  );
  console.log(out.join('\n'));
} finally {
  client.close();
  await d.stop();
}
