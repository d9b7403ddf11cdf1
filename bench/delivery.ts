/**
 * tuxsec-server's submit -> result for one agent in each connection mode, real processes on
 * loopback: tuxsec-server (TLS, SQLite); a pull agent polling it; a push agent it calls over mutual
 * TLS; an SSH-mode agent it logs in to (sshd on 127.0.0.1, tuxsec-shell, the OpenSSH client, with
 * the connection kept open as ssh_keepalive does by default). Each agent in front of a real
 * tuxsec-rootd, as the tuxsec user. Jobs (systeminfo get_hostname) are submitted through the
 * operator API one at a time (latency), then, for push, as a burst (throughput). Prints a markdown
 * table. Needs root; sets the tuxsec user's login shell for the run (test/helpers/sshd.ts).
 *
 *   npm run build && node --import tsx bench/delivery.ts [jobs] [ssh-jobs]
 */
import fs from 'node:fs';
import path from 'node:path';
import { API_KEY, startPushAgent } from '../test/agent/push-harness.ts';
import { makeAgentEnv, readCredentials, registerAgent, startAgent, startServer, tempDir } from '../test/agent/harness.ts';
import { startSshMode } from '../test/helpers/sshd.ts';
import { FINAL_JOB_STATUSES, type JobView } from '../src/protocol/operator-api.ts';

const N = Number(process.argv[2] ?? 200);
const N_SSH = Number(process.argv[3] ?? 30);
const WARMUP = 5;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const h = await startPushAgent({ config: { log_level: 'WARNING' } });
const sshMode = await startSshMode();
const dir = tempDir('tsa-bench-delivery-');
const server = await startServer({
  dir,
  certs: h.certs,
  config: { log_level: 'warn', agent_client_cert: h.certs.clientCert, agent_client_key: h.certs.clientKey, ssh_identity: sshMode.keys.key, ssh_keepalive: 60 },
});
// The pull agent uses the push agent's rootd; it reads the server's CA from its own config directory.
const pullEnv = await makeAgentEnv({ server_url: null, agent_id: null, api_key: null, ca_cert: null, rootd_socket: h.rootd.socketPath, log_level: 'WARNING' });
const ca = path.join(pullEnv.dir, 'server-ca.pem');
fs.copyFileSync(h.certs.ca, ca);
fs.chmodSync(ca, 0o644);
fs.writeFileSync(pullEnv.configPath, fs.readFileSync(pullEnv.configPath, 'utf8').replace(/^ca_cert: null$/m, `ca_cert: ${ca}`));
const reg = await registerAgent(pullEnv, server.url, (await server.op.createToken({ uses: 1, ttl: 600 })).token);
if (reg.code !== 0) throw new Error(`cannot register the pull agent: ${reg.stderr}`);
const pull = startAgent(pullEnv);
try {
  const ids = {
    pull: readCredentials(pullEnv).agent_id,
    push: (await server.op.addAgent({ name: 'bench-push', mode: 'push', url: `https://127.0.0.1:${h.port}`, ca_file: h.certs.ca, api_key: API_KEY })).agent.id,
    ssh: (
      await server.op.addAgent({ name: 'bench-ssh', mode: 'ssh', host: '127.0.0.1', port: sshMode.keyed.port, known_host: fs.readFileSync(sshMode.keyed.knownHosts, 'utf8').trim() })
    ).agent.id,
  };
  const finish = async (id: string): Promise<JobView> => {
    let job = await server.op.getJob(id, 30);
    while (!FINAL_JOB_STATUSES.has(job.status)) job = await server.op.getJob(id, 30);
    if (job.status !== 'completed') throw new Error(`job ${job.id} ${job.status}: ${JSON.stringify(job.result)}`);
    return job;
  };
  const submit = (agentId: string) => server.op.submitJob({ agent_id: agentId, module: 'systeminfo', action: 'get_hostname' });
  const rows: string[] = [];
  const row = (name: string, s: number[]) =>
    `| ${name} | ${s.length} | ${pct(s, 50).toFixed(1)} | ${pct(s, 90).toFixed(1)} | ${pct(s, 99).toFixed(1)} | ${s[s.length - 1]!.toFixed(1)} |`;
  for (const mode of ['pull', 'push', 'ssh'] as const) {
    const stored: number[] = [];
    const seen: number[] = [];
    const n = mode === 'ssh' ? N_SSH : N;
    for (let i = 0; i < WARMUP + n; i++) {
      const t0 = performance.now();
      const job = await finish((await submit(ids[mode])).id);
      const t1 = performance.now();
      if (i < WARMUP) continue;
      stored.push(Date.parse(job.finished_at!) - Date.parse(job.created_at));
      seen.push(t1 - t0);
    }
    stored.sort((a, b) => a - b);
    seen.sort((a, b) => a - b);
    rows.push(row(`${mode}: submit -> result stored (server clock)`, stored), row(`${mode}: submit call -> operator reads it final`, seen));
  }
  // A burst: all submitted at once, delivered over the push agent's connections.
  const b0 = performance.now();
  const burst = await Promise.all(Array.from({ length: N }, async () => (await submit(ids.push)).id));
  await Promise.all(burst.map(finish));
  const burstSecs = (performance.now() - b0) / 1000;
  console.log(`\n### Submit -> result by tuxsec-server, one agent per mode (${new Date().toISOString()})\n`);
  console.log(`NODE_EXTRA_CA_CERTS: ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}\n`);
  console.log('| measure | jobs | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
  console.log(`\npush: a burst of ${N} jobs submitted at once: all completed in ${burstSecs.toFixed(2)} s (${(N / burstSecs).toFixed(0)} jobs/s)`);
} finally {
  await pull.kill();
  await server.stop();
  await h.stop();
  await sshMode.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(pullEnv.dir, { recursive: true, force: true });
}
