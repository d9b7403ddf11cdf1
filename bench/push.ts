/**
 * Push mode throughput with real processes on loopback: tuxsec-agent in push mode as the tuxsec
 * user (mutual TLS, X-API-Key), tuxsec-rootd as root. Jobs (systeminfo get_hostname, each with its
 * own id: journaled and stored) are sent one after another over ONE keep-alive TLS connection.
 * Prints a markdown table. Needs root.
 *
 *   npm run build && node --import tsx bench/push.ts [jobs]
 */
import https from 'node:https';
import { startPushAgent } from '../test/agent/push-harness.ts';

const N = Number(process.argv[2] ?? 3000);
const WARMUP = 100;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// BENCH_STATE_DIR (a directory owned by tuxsec, e.g. on tmpfs) shows the cost without the disk's fsyncs.
const stateDir = process.env.BENCH_STATE_DIR;
const h = await startPushAgent({ config: { log_level: 'WARNING', ...(stateDir ? { state_dir: stateDir } : {}) } });
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
try {
  const ports = new Set<number>();
  const lat: number[] = [];
  let t0 = 0;
  for (let i = 0; i < WARMUP + N; i++) {
    if (i === WARMUP) t0 = performance.now();
    const s = performance.now();
    const r = await h.request('POST', '/execute', { agent, body: JSON.stringify({ id: `bench-${i}`, module: 'systeminfo', action: 'get_hostname', params: {} }) });
    if (r.status !== 200 || r.json.success !== true) throw new Error(`job ${i}: ${r.status} ${r.body}`);
    if (i >= WARMUP) {
      lat.push(performance.now() - s);
      ports.add(r.localPort);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  console.log(`\n### Push mode: jobs over one keep-alive mutual-TLS connection (${new Date().toISOString()})\n`);
  console.log(`NODE_EXTRA_CA_CERTS: ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}; state_dir: ${stateDir ?? 'on disk'}; connections used: ${ports.size}\n`);
  console.log('| jobs | seconds | jobs/s | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(
    `| ${N} | ${secs.toFixed(2)} | ${(N / secs).toFixed(0)} | ${pct(lat, 50).toFixed(2)} | ${pct(lat, 90).toFixed(2)} | ${pct(lat, 99).toFixed(2)} | ${lat[lat.length - 1]!.toFixed(2)} |`,
  );
} finally {
  agent.destroy();
  await h.stop();
}
