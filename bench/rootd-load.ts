// rootd under one hostile caller: the figures of issue 13, items 1-3.
//  1. lost answers: `get_inventory` followed at once by a line over max_message_bytes, 20 tries;
//  2. memory: one client pipelining 20,000 `get_info` in batches of 1,000, then 60,000; RSS during,
//     and 10 s after;
//  3. fairness: another client's one-shot ping p50/p99 while one client pipelines 200 `get_inventory`.
// Run: npm run bench -- rootd-load (as root; rootd runs with its default limits and config).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rssKiB } from '../test/helpers/raw.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-bench-load-'));
const sock = path.join(dir, 'run', 'rootd.sock');
const children: ChildProcess[] = [];

async function start(): Promise<number> {
  const cfg = path.join(dir, 'rootd.yaml');
  // Defaults except for a log level that keeps the console quiet and firewalld off (no bus here).
  writeFileSync(cfg, `socket: ${sock}\naudit_log: ${dir}/audit.log\nlog_level: error\nmodules: {firewalld: {enabled: false}}\n`);
  // As the launchers (bin/tuxsec-rootd, install.sh) start it; ROOTD_NODE_ARGS="" compares without.
  const nodeArgs = (process.env.ROOTD_NODE_ARGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean);
  const args = [...nodeArgs, path.join(ROOT, 'dist/tuxsec-rootd.js'), '--config', cfg];
  if (process.getuid?.() !== 0) args.push('--dev');
  const proc = spawn(process.execPath, args, { stdio: 'inherit' });
  children.push(proc);
  for (let i = 0; i < 400 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 200));
  return proc.pid!;
}

function connect(): Promise<{ s: net.Socket; lines: string[]; wait(n: number, ms?: number): Promise<boolean>; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock);
    const lines: string[] = [];
    let buf = '';
    let isClosed = false;
    let wake: (() => void) | null = null;
    s.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      wake?.();
    });
    s.on('close', () => {
      isClosed = true;
      wake?.();
    });
    s.on('error', () => {});
    s.once('connect', () =>
      resolve({
        s,
        lines,
        closed: () => isClosed,
        async wait(n, ms = 60_000) {
          const end = Date.now() + ms;
          while (lines.length < n && !isClosed && Date.now() < end) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
          return lines.length >= n;
        },
      }),
    );
    s.once('error', reject);
  });
}

const req = (id: string, action: string) => JSON.stringify({ type: 'execute_command', request_id: id, data: { module: 'systeminfo', action, parameters: {} } }) + '\n';
const mib = (k: number) => (k / 1024).toFixed(0);

async function lostAnswers(): Promise<string> {
  let lost = 0;
  for (let i = 0; i < 20; i++) {
    const c = await connect();
    c.s.write(req(`inv${i}`, 'get_inventory') + 'x'.repeat(1024 * 1024 + 10) + '\n');
    await c.wait(2, 20_000);
    while (!c.closed()) await new Promise((r) => setTimeout(r, 20));
    if (!c.lines.some((l) => l.includes(`"inv${i}"`))) lost++;
  }
  return `| 1. get_inventory + 1 MiB line, 20 tries | answers lost: ${lost} of 20 |`;
}

async function memory(pid: number): Promise<string[]> {
  const out: string[] = [];
  const idle = await rssKiB(pid);
  let max = idle;
  const sampler = setInterval(() => void rssKiB(pid).then((v) => (max = Math.max(max, v)), () => {}), 100);
  const c = await connect();
  let sent = 0;
  const batch = async (n: number) => {
    let text = '';
    for (let i = 0; i < n; i++) text += req(`m${sent++}`, 'get_info');
    c.s.write(text);
    await c.wait(sent, 120_000);
  };
  const t0 = performance.now();
  for (let b = 0; b < 20; b++) await batch(1000);
  out.push(`| 2. 20,000 get_info pipelined in batches of 1,000 | RSS idle ${mib(idle)} MiB, max ${mib(max)} MiB, ${((20_000 / (performance.now() - t0)) * 1000).toFixed(0)} req/s |`);
  for (let b = 0; b < 40; b++) await batch(1000);
  out.push(`| 2. then 40,000 more (60,000 in all) | RSS max ${mib(max)} MiB |`);
  c.s.destroy();
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 10_000));
  out.push(`| 2. 10 s after the load | RSS ${mib(await rssKiB(pid))} MiB (started at ${mib(idle)} MiB) |`);
  return out;
}

async function fairness(): Promise<string> {
  const heavy = await connect();
  let text = '';
  for (let i = 0; i < 200; i++) text += req(`h${i}`, 'get_inventory');
  const lat: number[] = [];
  heavy.s.write(text);
  const t0 = performance.now();
  const done = heavy.wait(200, 120_000);
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished || lat.length < 50) {
    const t = performance.now();
    const c = await connect();
    c.s.write('{"type":"ping","request_id":"p","data":{}}\n');
    await c.wait(1);
    c.s.destroy();
    lat.push(performance.now() - t);
    if (finished && lat.length >= 50) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const heavyMs = performance.now() - t0;
  heavy.s.destroy();
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(1);
  return `| 3. one-shot ping while another client pipelines 200 get_inventory | p50 ${p(0.5)} ms, p99 ${p(0.99)} ms over ${lat.length} pings (heavy client done in ${(heavyMs / 1000).toFixed(1)} s) |`;
}

try {
  const pid = await start();
  const fresh = await rssKiB(pid);
  console.log(`NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}; rootd node flags: "${process.env.ROOTD_NODE_ARGS ?? '--max-semi-space-size=1'}"\n`);
  console.log('| case | measured |');
  console.log('| --- | --- |');
  console.log(await lostAnswers());
  console.log(await fairness());
  for (const l of await memory(pid)) console.log(l);
  console.log(`| rootd RSS just after start | ${mib(fresh)} MiB |`);
} finally {
  for (const p of children) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dir, { recursive: true, force: true });
}
