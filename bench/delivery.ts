/**
 * Push-mode delivery by tuxsec-server, real processes on loopback: tuxsec-server (TLS, SQLite)
 * delivering to tuxsec-agent in push mode as the tuxsec user (mutual TLS, X-API-Key) in front of
 * tuxsec-rootd. Jobs (systeminfo get_hostname) are submitted through the operator API one at a time
 * (latency), then as a burst (throughput). Prints a markdown table. Needs root.
 *
 *   npm run build && node --import tsx bench/delivery.ts [jobs]
 */
import fs from 'node:fs';
import path from 'node:path';
import { API_KEY, startPushAgent } from '../test/agent/push-harness.ts';
import { startServer, tempDir } from '../test/agent/harness.ts';
import { FINAL_JOB_STATUSES, type JobView } from '../src/server/operator-client.ts';

const N = Number(process.argv[2] ?? 200);
const WARMUP = 10;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const h = await startPushAgent({ config: { log_level: 'WARNING' } });
const dir = tempDir('tsa-bench-delivery-');
const server = await startServer({
  dir,
  certs: h.certs,
  config: { log_level: 'warn', agent_client_cert: h.certs.clientCert, agent_client_key: h.certs.clientKey },
});
try {
  const { agent } = await server.op.addAgent({ name: 'bench-push', mode: 'push', url: `https://127.0.0.1:${h.port}`, ca_file: h.certs.ca, api_key: API_KEY });
  const finish = async (id: string): Promise<JobView> => {
    let job = await server.op.getJob(id, 30);
    while (!FINAL_JOB_STATUSES.has(job.status)) job = await server.op.getJob(id, 30);
    if (job.status !== 'completed') throw new Error(`job ${job.id} ${job.status}: ${JSON.stringify(job.result)}`);
    return job;
  };
  const submit = () => server.op.submitJob({ agent_id: agent.id, module: 'systeminfo', action: 'get_hostname' });
  const stored: number[] = [];
  const seen: number[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = performance.now();
    const job = await finish((await submit()).id);
    const t1 = performance.now();
    if (i < WARMUP) continue;
    stored.push(Date.parse(job.finished_at!) - Date.parse(job.created_at));
    seen.push(t1 - t0);
  }
  // A burst: all submitted at once, delivered over the per-agent connections.
  const b0 = performance.now();
  const ids = await Promise.all(Array.from({ length: N }, async () => (await submit()).id));
  await Promise.all(ids.map(finish));
  const burstSecs = (performance.now() - b0) / 1000;
  stored.sort((a, b) => a - b);
  seen.sort((a, b) => a - b);
  const row = (name: string, s: number[]) =>
    `| ${name} | ${s.length} | ${pct(s, 50).toFixed(1)} | ${pct(s, 90).toFixed(1)} | ${pct(s, 99).toFixed(1)} | ${s[s.length - 1]!.toFixed(1)} |`;
  console.log(`\n### Push delivery by tuxsec-server (one push agent, ${new Date().toISOString()})\n`);
  console.log(`NODE_EXTRA_CA_CERTS: ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}\n`);
  console.log('| measure | jobs | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  console.log(row('push: submit -> result stored (server clock)', stored));
  console.log(row('push: submit call -> operator reads it final', seen));
  console.log(`\nburst of ${N} jobs submitted at once: all completed in ${burstSecs.toFixed(2)} s (${(N / burstSecs).toFixed(0)} jobs/s)`);
} finally {
  await server.stop();
  await h.stop();
  fs.rmSync(path.join(dir), { recursive: true, force: true });
}
