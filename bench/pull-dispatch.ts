/**
 * Pull-mode dispatch latency end to end with real processes on loopback: tuxsec-server (TLS,
 * SQLite), tuxsec-rootd as root, tuxsec-agent as the tuxsec user (long-poll). Jobs
 * (systeminfo get_hostname) are submitted one at a time through the operator API; the latency is
 * submit -> result stored, from the server's own created_at/finished_at, and as the operator sees it
 * (submit call start -> job read back final). Prints a markdown table. Needs root.
 *
 *   npm run build && node --import tsx bench/pull-dispatch.ts [jobs]
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startRootd } from '../test/helpers/rootd.ts';
import { certsIn, createToken, makeAgentEnv, registerAgent, startAgent, startServer, tempDir } from '../test/agent/harness.ts';
import { FINAL_JOB_STATUSES, type JobView } from '../src/protocol/operator-api.ts';

const N = Number(process.argv[2] ?? 250);
const WARMUP = 10;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const dir = tempDir('tsa-bench-');
const certs = await certsIn(path.join(dir, 'certs'));
const server = await startServer({ dir, certs, config: { log_level: 'warn' } });
const rootd = await startRootd({ config: { log_level: 'warn' } });
const env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: rootd.socketPath, log_level: 'WARNING' });
let agent: ReturnType<typeof startAgent> | null = null;
try {
  const reg = await registerAgent(env, server.url, await createToken(server));
  if (reg.code !== 0) throw new Error(reg.stderr);
  const agentId = (YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as { agent_id: string }).agent_id;
  agent = startAgent(env);
  const stored: number[] = [];
  const seen: number[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = performance.now();
    const sub = await server.op.submitJob({ agent_id: agentId, module: 'systeminfo', action: 'get_hostname' });
    let job: JobView = sub;
    while (!FINAL_JOB_STATUSES.has(job.status)) {
      try {
        job = await server.op.getJob(sub.id, 10);
      } catch {
        // Server-side wait unavailable: poll.
        await new Promise((r) => setTimeout(r, 2));
        job = await server.op.getJob(sub.id);
      }
    }
    const t1 = performance.now();
    if (job.status !== 'completed') throw new Error(`job ${job.id} ${job.status}: ${JSON.stringify(job.result)}`);
    if (i < WARMUP) continue;
    stored.push(Date.parse(job.finished_at!) - Date.parse(job.created_at));
    seen.push(t1 - t0);
  }
  stored.sort((a, b) => a - b);
  seen.sort((a, b) => a - b);
  const row = (name: string, s: number[]) =>
    `| ${name} | ${s.length} | ${pct(s, 50).toFixed(1)} | ${pct(s, 90).toFixed(1)} | ${pct(s, 99).toFixed(1)} | ${s[s.length - 1]!.toFixed(1)} |`;
  console.log(`\n### Pull dispatch latency (one agent, long-poll, jobs one at a time, ${new Date().toISOString()})\n`);
  console.log('| measure | jobs | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  console.log(row('submit -> result stored (server clock)', stored));
  console.log(row('submit call -> operator reads it final', seen));
} finally {
  await agent?.kill();
  await server.stop();
  await rootd.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(env.dir, { recursive: true, force: true });
}
