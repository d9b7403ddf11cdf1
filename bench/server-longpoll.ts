/**
 * tuxsec-server under many long-polling agents on loopback: a real server process (TLS, SQLite)
 * and N simulated agents (default 2,000) in this process, each holding a check-in with `wait`.
 * Measures dispatch latency (operator submit -> agent has the command) and submit -> result stored,
 * plus the server's RSS and CPU. Prints markdown tables.
 *
 *   npm run build && node --import tsx bench/server-longpoll.ts [agents] [sequential-jobs] [worker-threads]
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { OperatorClient } from '../src/server/operator-client.ts';
import { startServer } from '../test/helpers/server.ts';

const N = Number(process.argv[2] ?? 2000);
const SEQ = Number(process.argv[3] ?? 200);
const WAIT = 25;
const WORKERS = Number(process.argv[4] ?? 2);
const RAMP_MS = 10_000;
const FEATURES = ['long-poll', 'results', 'redelivery'];
// Every simulated agent connects from 127.0.0.1 and registers at once: lift the per-address limits
// (max_connections stays at its default, which must hold N agents).
const LIMITS = { max_connections_per_ip: 4096, register_rate_limit: 1_000_000 };

let srv = await startServer({ config: { log_level: 'warn', long_poll_max: 30, ...LIMITS } });
const ca = readFileSync(srv.certs.ca);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    srv.proc.kill('SIGKILL');
    srv.cleanup();
    process.exit(1);
  });
}
let stoppingServer = false;
function watchServer(): void {
  srv.proc.once('exit', (code, signal) => {
    if (stoppingServer) return;
    process.stderr.write(`server died (${code ?? signal}):\n${srv.log().split('\n').slice(-40).join('\n')}\n`);
    srv.cleanup();
    process.exit(1);
  });
}
watchServer();
const progress = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);
const pool = new Agent({ connect: { ca }, connections: 100, keepAliveTimeout: 120_000, pipelining: 1 });
const op = new OperatorClient({ url: srv.url, adminToken: srv.adminToken, ca, connections: 64 });
let pid = srv.proc.pid!;
progress(`server pid ${pid}`);

async function post(path: string, body: unknown, key?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${srv.url}${path}`, {
    method: 'POST',
    dispatcher: pool,
    headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
    body: JSON.stringify(body),
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

function procStat(p: number): { cpuTicks: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
  return { cpuTicks, rssMiB: Number(rss?.[1] ?? 0) / 1024 };
}
const TICK = 100; // USER_HZ on Linux

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const f = (x: number): string => x.toFixed(1);

// ---- enrol ----
const { token } = await op.createToken({ uses: N, ttl: 3600 });
const creds: Array<{ id: string; key: string }> = [];
const tEnrol = performance.now();
for (let i = 0; i < N; i += 100) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(100, N - i) }, (_, k) =>
      post('/agents/api/register/', { hostname: `sim-${i + k}`, ip_address: '127.0.0.1', os_info: 'Linux', enrollment_token: token, machine_id: `m-${i + k}` }),
    ),
  );
  for (const r of batch) {
    if (r.status !== 200) throw new Error(`cannot register: ${JSON.stringify(r.body)}`);
    creds.push({ id: String(r.body.agent_id), key: String(r.body.api_key) });
  }
}
const enrolMs = performance.now() - tEnrol;
progress(`${N} agents enrolled in ${(enrolMs / 1000).toFixed(1)} s`);

// ---- agents: WORKERS threads, each with its own event loop and connection pool ----
interface Pending { t0: number; received?: number; stored?: number; done: () => void }
const pending = new Map<string, Pending>();
const now = (): number => performance.timeOrigin + performance.now();
const stats = new Map<number, { connected: number; checkins: number; errors: Record<string, number> }>();
const workers = Array.from({ length: WORKERS }, (_, w) => {
  const share = creds.filter((_, i) => i % WORKERS === w);
  const worker = new Worker(new URL('./server-longpoll-agents.mjs', import.meta.url), {
    workerData: { url: srv.url, ca: ca.toString(), creds: share, wait: WAIT, rampMs: RAMP_MS, features: FEATURES },
    execArgv: [],
  });
  worker.on('error', (e) => {
    throw e;
  });
  worker.on('message', (m: { type: string; t: number; tags?: string[]; connected: number; checkins: number; errors: Record<string, number> }) => {
    if (m.type === 'stats') stats.set(w, m);
    else if (m.type === 'received') for (const tag of m.tags!) { const p = pending.get(tag); if (p) p.received = m.t; }
    else if (m.type === 'stored') for (const tag of m.tags!) { const p = pending.get(tag); if (p && p.stored === undefined) { p.stored = m.t; p.done(); } }
  });
  return worker;
});
const total = (k: 'connected' | 'checkins'): number => [...stats.values()].reduce((a, s) => a + s[k], 0);
const tConnect = performance.now();
while (total('connected') < N) {
  if (performance.now() - tConnect > 120_000) throw new Error(`only ${total('connected')} of ${N} agents connected`);
  if (Math.random() < 0.1) progress(`connected ${total('connected')}, check-ins ${total('checkins')}`);
  await sleep(250);
}
const connectS = (performance.now() - tConnect) / 1000;
await sleep(2000); // every agent's check-in is now held

async function submitAndWait(agent: { id: string }, tag: string): Promise<Pending> {
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const t0 = now();
  const p: Pending = { t0, done };
  pending.set(tag, p);
  await op.submitJob({ agent_id: agent.id, module: 'systeminfo', action: 'get_info', params: { tag } });
  const timer = setTimeout(() => {
    throw new Error(`job ${tag} did not finish within 20 s (${p.received === undefined ? 'never received' : 'received, result not acknowledged'})`);
  }, 20_000);
  await finished;
  clearTimeout(timer);
  return p;
}

interface PhaseRow { phase: string; jobs: number; wallS: number; d50: number; d99: number; dmax: number; s50: number; s99: number; cpu: number; rss: number }
const rows: PhaseRow[] = [];
async function phase(name: string, run: () => Promise<Pending[]>): Promise<void> {
  progress(`phase ${name}`);
  const a = procStat(pid);
  const t = performance.now();
  const res = await run();
  const wall = (performance.now() - t) / 1000;
  const b = procStat(pid);
  const d = res.map((p) => p.received! - p.t0).sort((x, y) => x - y);
  const s = res.map((p) => p.stored! - p.t0).sort((x, y) => x - y);
  rows.push({ phase: name, jobs: res.length, wallS: wall, d50: pct(d, 50), d99: pct(d, 99), dmax: d[d.length - 1] ?? NaN, s50: pct(s, 50), s99: pct(s, 99), cpu: ((b.cpuTicks - a.cpuTicks) / TICK / wall) * 100, rss: b.rssMiB });
}

const idleA = procStat(pid);
const idleT = performance.now();
await sleep(10_000);
const idleB = procStat(pid);
const idleCpu = ((idleB.cpuTicks - idleA.cpuTicks) / TICK / ((performance.now() - idleT) / 1000)) * 100;

await phase(`sequential (${SEQ} jobs, one at a time, random agent)`, async () => {
  const out: Pending[] = [];
  for (let i = 0; i < SEQ; i++) out.push(await submitAndWait(creds[Math.floor(Math.random() * N)]!, `seq-${i}`));
  return out;
});
// Open the operator's 64 connections first: the burst measures dispatch, not TLS handshakes.
await Promise.all(Array.from({ length: 64 }, () => op.listJobs({ limit: 1 })));
await phase(`burst (one job to each of ${N} agents, 64 submits in flight)`, async () => {
  const out: Pending[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < N) {
        const i = next++;
        out.push(await submitAndWait(creds[i]!, `burst-${i}`));
      }
    }),
  );
  return out;
});

// Outage: SIGKILL the server while every agent holds a check-in, start it again on the same port
// and database, and time how long until all agents are connected again; then dispatch again.
stoppingServer = true;
await srv.kill();
const tRestart = performance.now();
srv = await startServer({ dir: srv.dir, certs: srv.certs, config: { log_level: 'warn', long_poll_max: 30, ...LIMITS, listen: `127.0.0.1:${srv.port}` } });
stoppingServer = false;
watchServer();
pid = srv.proc.pid!;
const startS = (performance.now() - tRestart) / 1000;
while (total('connected') < N) {
  if (performance.now() - tRestart > 120_000) throw new Error(`only ${total('connected')} of ${N} agents reconnected`);
  await sleep(50);
}
const reconnectS = (performance.now() - tRestart) / 1000;
await sleep(2000);
await phase(`after SIGKILL + restart (${Math.min(SEQ, 100)} jobs, one at a time)`, async () => {
  const out: Pending[] = [];
  for (let i = 0; i < Math.min(SEQ, 100); i++) out.push(await submitAndWait(creds[Math.floor(Math.random() * N)]!, `re-${i}`));
  return out;
});

const end = procStat(pid);
const errorKinds = new Map<string, number>();
for (const st of stats.values()) for (const [k, v] of Object.entries(st.errors)) errorKinds.set(k, (errorKinds.get(k) ?? 0) + v);
const errors = [...errorKinds.values()].reduce((a, b) => a + b, 0);
for (const w of workers) w.postMessage('stop');
const stopT = performance.now();
stoppingServer = true;
const code = await srv.stop();
const stopMs = performance.now() - stopT;
await Promise.all(workers.map((w) => w.terminate()));
await pool.close();
await op.close();
srv.cleanup();

console.log(`## tuxsec-server: ${N} long-polling agents on loopback (TLS, SQLite WAL synchronous=FULL)\n`);
console.log('| phase | jobs | wall s | dispatch p50 ms | dispatch p99 ms | dispatch max ms | stored p50 ms | stored p99 ms | server CPU % | server RSS MiB |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.phase} | ${r.jobs} | ${f(r.wallS)} | ${f(r.d50)} | ${f(r.d99)} | ${f(r.dmax)} | ${f(r.s50)} | ${f(r.s99)} | ${f(r.cpu)} | ${f(r.rss)} |`);
}
console.log('\n| measure | value |\n| --- | ---: |');
console.log(`| agents enrolled | ${N} (${f(enrolMs / 1000)} s) |`);
console.log(`| agents connected (ramp ${RAMP_MS / 1000} s, ${WORKERS} worker threads) | ${f(connectS)} s |`);
console.log(`| server RSS, ${N} check-ins held | ${f(idleB.rssMiB)} MiB |`);
console.log(`| server CPU, ${N} agents idle (10 s) | ${f(idleCpu)} % |`);
console.log(`| server RSS at end | ${f(end.rssMiB)} MiB |`);
console.log(`| SIGKILL -> server listening again | ${f(startS)} s |`);
console.log(`| SIGKILL -> all ${N} agents connected again | ${f(reconnectS)} s |`);
console.log(`| client-side errors (during the outage: expected) | ${errors} ${[...errorKinds].map(([k, v]) => `(${v}× ${k})`).join(' ')} |`);
console.log(`| SIGTERM -> exit (held polls answered) | ${f(stopMs)} ms, exit code ${code} |`);
console.log('\n(dispatch = operator submit -> command in the agent; stored = submit -> result acknowledged; server CPU % of one core; machine: 2 cores shared by server, simulator and operator)');
