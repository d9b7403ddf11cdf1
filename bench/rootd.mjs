// Benchmark of tuxsec-rootd against a bare Node line-echo server, on this machine, in one run.
// Prints markdown tables: requests/s and p50/p99 latency for one-shot connections, one
// persistent connection used sequentially, and pipelined; then tuxsec-cli process time.
// Run: npm run bench:rootd  (builds first). Needs root (rootd runs as root) or runs rootd with --dev.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-bench-'));
const children = [];

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

async function waitFor(sock) {
  for (let i = 0; i < 400; i++) {
    if (existsSync(sock)) {
      const ok = await new Promise((res) => {
        const s = net.createConnection(sock);
        s.once('connect', () => (s.destroy(), res(true)));
        s.once('error', () => res(false));
      });
      if (ok) return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${sock} did not come up`);
}

// The reference: a bare line-echo server that frames lines and writes one reply per line.
function startEcho(sock) {
  const code = `require('net').createServer((c) => { let b = ''; c.on('data', (d) => { b += d; let i; while ((i = b.indexOf('\\n')) >= 0) { c.write(b.slice(0, i + 1)); b = b.slice(i + 1); } }); c.on('error', () => {}); }).listen(${JSON.stringify(sock)})`;
  const p = spawn(process.execPath, ['-e', code], { stdio: 'inherit' });
  children.push(p);
  return p;
}

function startRootd(sock) {
  const cfg = path.join(dir, 'rootd.yaml');
  writeFileSync(cfg, `socket: ${sock}\naudit_log: ${dir}/audit.log\nlog_level: warn\nrate_limit: {requests_per_second: 10000000, burst: 10000000}\nmax_inflight_per_connection: 4096\nallowed_users: []\n`);
  const args = [path.join(ROOT, 'dist/tuxsec-rootd.js'), '--config', cfg];
  if (process.getuid() !== 0) args.push('--dev');
  const p = spawn(process.execPath, args, { stdio: 'inherit' });
  children.push(p);
  return p;
}

/** Sequential one-shot connections from `conc` parallel loops. */
async function oneShot(sock, line, conc = 4) {
  const lat = [];
  const end = performance.now() + DURATION_MS;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await new Promise((res, rej) => {
        const s = net.createConnection(sock);
        let got = '';
        s.on('connect', () => s.write(line));
        s.on('data', (d) => {
          got += d;
          if (got.includes('\n')) {
            s.destroy();
            res();
          }
        });
        s.on('error', rej);
      });
      lat.push(performance.now() - t);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, loop));
  return { n: lat.length, secs: (performance.now() - t0) / 1000, lat };
}

function connect(sock) {
  return new Promise((res, rej) => {
    const s = net.createConnection(sock);
    s.once('connect', () => res(s));
    s.once('error', rej);
  });
}

/** One connection, one request at a time. */
async function sequential(sock, line) {
  const s = await connect(sock);
  const lat = [];
  let buf = '';
  let wake = null;
  s.on('data', (d) => {
    buf += d;
    if (buf.includes('\n') && wake) wake();
  });
  const end = performance.now() + DURATION_MS;
  const t0 = performance.now();
  while (performance.now() < end) {
    const t = performance.now();
    await new Promise((res) => {
      wake = res;
      s.write(line);
    });
    buf = buf.slice(buf.indexOf('\n') + 1);
    lat.push(performance.now() - t);
  }
  s.destroy();
  return { n: lat.length, secs: (performance.now() - t0) / 1000, lat };
}

/** One connection, batches of `batch` requests written at once; latency per batch / per request. */
async function pipelined(sock, line, batch = 500) {
  const s = await connect(sock);
  const payload = line.repeat(batch);
  let seen = 0;
  let wake = null;
  let need = 0;
  s.on('data', (d) => {
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) seen++;
    if (seen >= need && wake) wake();
  });
  const lat = [];
  let n = 0;
  const end = performance.now() + DURATION_MS;
  const t0 = performance.now();
  while (performance.now() < end) {
    const t = performance.now();
    need = seen + batch;
    await new Promise((res) => {
      wake = res;
      s.write(payload);
    });
    n += batch;
    lat.push(performance.now() - t);
  }
  s.destroy();
  return { n, secs: (performance.now() - t0) / 1000, lat, batch };
}

function row(name, r, baseline) {
  const sorted = [...r.lat].sort((a, b) => a - b);
  const rps = r.n / r.secs;
  const unit = r.batch ? ` (batch of ${r.batch})` : '';
  return `| ${name} | ${Math.round(rps).toLocaleString('en')} | ${pct(sorted, 50).toFixed(3)}${unit} | ${pct(sorted, 99).toFixed(3)} | ${baseline ? ((rps / baseline) * 100).toFixed(0) + '%' : '—'} |`;
}

function median(cmd, args, env, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync(cmd, args, { env });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b);
}

/**
 * Process time of the CLI. This machine's environment sets NODE_EXTRA_CA_CERTS, which makes
 * every node process parse a CA bundle at start (~90 ms here); a login over SSH or a systemd
 * unit has no such variable, so both are shown.
 */
function cliTimes(sock, runs = 20) {
  const clean = { PATH: process.env.PATH, TUXSEC_SOCKET: sock };
  const inherited = { ...process.env, TUXSEC_SOCKET: sock };
  const cli = path.join(ROOT, 'bin/tuxsec-cli');
  const args = ['execute', 'systeminfo', 'get_hostname'];
  return [
    ['tuxsec-cli execute systeminfo get_hostname (clean environment, as over SSH)', median(cli, args, clean, runs)],
    ['node -e 0 (clean environment)', median(process.execPath, ['-e', '0'], clean, runs)],
    ...(process.env.NODE_EXTRA_CA_CERTS
      ? [
          ['tuxsec-cli execute systeminfo get_hostname (with NODE_EXTRA_CA_CERTS set)', median(cli, args, inherited, runs)],
          ['node -e 0 (with NODE_EXTRA_CA_CERTS set)', median(process.execPath, ['-e', '0'], inherited, runs)],
        ]
      : []),
  ];
}

async function main() {
  const echoSock = path.join(dir, 'echo.sock');
  const rootdSock = path.join(dir, 'run', 'rootd.sock');
  startEcho(echoSock);
  startRootd(rootdSock);
  await waitFor(echoSock);
  await waitFor(rootdSock);
  const ping = JSON.stringify({ type: 'ping', request_id: 'b1', data: {} }) + '\n';
  const host = JSON.stringify({ type: 'execute_command', request_id: 'b2', data: { module: 'systeminfo', action: 'get_hostname', parameters: {} } }) + '\n';

  const out = [];
  out.push(`## tuxsec-rootd (${DURATION_MS / 1000} s per row, node ${process.version}, ${(await import('node:os')).cpus().length} cores)\n`);
  out.push('| mode / request | requests/s | p50 ms | p99 ms | vs echo |');
  out.push('| --- | ---: | ---: | ---: | ---: |');
  for (const [mode, fn] of [
    ['one-shot', oneShot],
    ['sequential', sequential],
    ['pipelined', pipelined],
  ]) {
    const e = await fn(echoSock, ping);
    const base = e.n / e.secs;
    out.push(row(`${mode}: bare echo server`, e));
    out.push(row(`${mode}: rootd ping`, await fn(rootdSock, ping), base));
    out.push(row(`${mode}: rootd systeminfo get_hostname`, await fn(rootdSock, host), base));
  }
  out.push('\n## tuxsec-cli process time (20 runs each)\n');
  out.push('| command | p50 ms | min ms | max ms |');
  out.push('| --- | ---: | ---: | ---: |');
  for (const [name, t] of cliTimes(rootdSock)) {
    out.push(`| ${name} | ${pct(t, 50).toFixed(1)} | ${t[0].toFixed(1)} | ${t.at(-1).toFixed(1)} |`);
  }
  console.log(out.join('\n'));
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  rmSync(dir, { recursive: true, force: true });
}
