// One-command demo (`npm run demo`, which builds first): on loopback, with a temporary directory
// for certificates, database, sockets and state, it starts tuxsec-server, a development
// tuxsec-rootd and tuxsec-agent in pull mode, enrolls the agent with a one-time token, runs a few
// jobs, prints their results and the dispatch latency, and stops everything it started (by pid),
// also on failure or Ctrl-C. As root, the agent runs as the `tuxsec` user (else `nobody`): it
// refuses to run as root.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const DIST = path.join(ROOT, 'dist');
const NODE = process.execPath;
const OPENSSL = '/usr/bin/openssl';
const GETENT = '/usr/bin/getent';
const JOBS = [
  ['systeminfo', 'get_hostname'],
  ['systeminfo', 'get_uptime'],
  ['systeminfo', 'get_kernel_version'],
  ['systeminfo', 'get_info'],
  ['systeminfo', 'list_modules'],
];

const children = [];
let tmp = null;
let stopping = null;

function say(msg) {
  process.stdout.write(`${msg}\n`);
}

function running(c) {
  return c.proc.exitCode === null && c.proc.signalCode === null;
}

/** Stops every process the demo started (agent first: it is a client of the others), by pid. */
function stopAll() {
  stopping ??= (async () => {
    for (const c of [...children].reverse()) if (running(c)) process.kill(c.proc.pid, 'SIGTERM');
    const all = () => Promise.all(children.map((c) => c.exited));
    await Promise.race([all(), new Promise((r) => setTimeout(r, 5000))]);
    for (const c of children) if (running(c)) process.kill(c.proc.pid, 'SIGKILL');
    await Promise.race([all(), new Promise((r) => setTimeout(r, 2000))]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  })();
  return stopping;
}

// Last resort when the process exits some other way: nothing may outlive the demo.
process.on('exit', () => {
  for (const c of children) {
    if (running(c)) {
      try {
        process.kill(c.proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(`\n${sig}: stopping everything the demo started`);
    stopAll().finally(() => process.exit(130));
  });
}

class DemoError extends Error {}

function fail(msg, c) {
  let text = msg;
  if (c) text += `\n--- last output of ${c.name} ---\n${c.out().slice(-4000)}`;
  throw new DemoError(text);
}

function mustRun(file, args, what) {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) fail(`cannot ${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`cannot ${what}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

function start(name, args, opts = {}) {
  const proc = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmp, ...opts });
  let out = '';
  const take = (c) => {
    out += c.toString();
    if (out.length > 1_000_000) out = out.slice(-500_000);
  };
  proc.stdout.on('data', take);
  proc.stderr.on('data', take);
  const c = { name, proc, out: () => out, exited: new Promise((r) => proc.once('exit', r)) };
  children.push(c);
  return c;
}

async function waitUntil(what, fn, c, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c && c.proc.exitCode !== null) fail(`${c.name} exited with code ${c.proc.exitCode} while waiting for ${what}`, c);
    if (await fn()) return;
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`, c);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function makeCerts(dir) {
  fs.mkdirSync(dir, { mode: 0o755 });
  const p = (f) => path.join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  mustRun(OPENSSL, ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=tuxsec-demo-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], 'make the demo CA');
  fs.writeFileSync(p('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  mustRun(OPENSSL, ['req', '-new', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1'], 'make the server key');
  mustRun(OPENSSL, ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext')], 'sign the server certificate');
  fs.chmodSync(p('ca.pem'), 0o644);
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

/** The user the agent runs as when the demo is root: tuxsec if it exists, else nobody. */
function agentUser() {
  for (const name of ['tuxsec', 'nobody']) {
    const r = spawnSync(GETENT, ['passwd', name], { encoding: 'utf8' });
    if (r.status === 0) {
      const f = r.stdout.trim().split(':');
      return { name, uid: Number(f[2]), gid: Number(f[3]) };
    }
  }
  fail('cannot find a user to run the agent as (neither "tuxsec" nor "nobody" exists)');
}

function yaml(obj) {
  return Object.entries(obj).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
}

/** Runs a program to completion without blocking the event loop (so Ctrl-C is handled at once). */
function runAsync(args, timeoutMs = 60_000, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmp, env: { ...process.env, ...env } });
    const c = { name: path.basename(args[0]), proc: p, out: () => '', exited: new Promise((r) => p.once('exit', r)) };
    children.push(c);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

async function serverCli(cfg, args) {
  const r = await runAsync([path.join(DIST, 'tuxsec-server.js'), ...args, '--config', cfg, '--json']);
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = null;
  }
  return { code: r.code, json, stderr: r.stderr };
}

async function main() {
  for (const f of ['tuxsec-server.js', 'tuxsec-server-serve.js', 'tuxsec-rootd.js', 'tuxsec-agent.js']) {
    if (!fs.existsSync(path.join(DIST, f))) fail(`dist/${f} is missing: run "npm run demo" (it builds first)`);
  }
  if (!fs.existsSync(OPENSSL)) fail(`${OPENSSL} is missing: install openssl`);
  const isRoot = process.getuid() === 0;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-demo-'));
  fs.chmodSync(tmp, 0o755);
  say(`TuxSec demo in ${tmp}`);

  const certs = makeCerts(path.join(tmp, 'certs'));
  say('[1/6] certificates: a throw-away CA and a server certificate for 127.0.0.1');

  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const serverCfg = path.join(tmp, 'server.yaml');
  fs.writeFileSync(serverCfg, yaml({
    listen: `127.0.0.1:${port}`,
    database: path.join(tmp, 'server.db'),
    tls_cert: certs.cert,
    tls_key: certs.key,
    admin_token: randomBytes(24).toString('hex'),
    server_url: url,
    ca_cert: certs.ca,
    log_level: 'warn',
  }), { mode: 0o600 });
  const server = start('tuxsec-server', [path.join(DIST, 'tuxsec-server.js'), 'serve', '--config', serverCfg]);
  await waitUntil('tuxsec-server to listen', () => portOpen(port), server);
  say(`[2/6] tuxsec-server listening on ${url} (SQLite: ${path.join(tmp, 'server.db')})`);

  const user = isRoot ? agentUser() : null;
  // In a directory of its own: rootd gives the socket's directory to the socket group.
  const sock = path.join(tmp, 'run', 'rootd.sock');
  const rootdCfg = path.join(tmp, 'rootd.yaml');
  fs.writeFileSync(rootdCfg, yaml({
    socket: sock,
    audit_log: path.join(tmp, 'audit.log'),
    log_level: 'warn',
    ...(user ? { socket_group: String(user.gid), allowed_users: [user.name] } : {}),
  }), { mode: 0o600 });
  const rootd = start('tuxsec-rootd', [path.join(DIST, 'tuxsec-rootd.js'), '--dev', '--socket', sock, '--config', rootdCfg]);
  await waitUntil('tuxsec-rootd to create its socket', () => fs.existsSync(sock), rootd);
  say(`[3/6] tuxsec-rootd (development mode) on ${sock}`);

  const tok = await serverCli(serverCfg, ['token', 'create', '--uses', '1', '--ttl', '600']);
  if (tok.code !== 0 || !tok.json?.token) fail(`cannot create an enrollment token: ${tok.stderr}`, server);
  const stateDir = path.join(tmp, 'agent-state');
  fs.mkdirSync(stateDir, { mode: 0o700 });
  // A directory of its own, like /etc/tuxsec: register keeps the api_key in credentials/ beside
  // agent.yaml, and refuses a directory above it that others can write.
  const agentDir = path.join(tmp, 'agent');
  fs.mkdirSync(agentDir, { mode: 0o755 });
  const agentCfg = path.join(agentDir, 'agent.yaml');
  fs.writeFileSync(agentCfg, '# tuxsec-agent demo configuration (agent_id/api_key are written by "register")\n' + yaml({
    mode: 'pull',
    ca_cert: certs.ca,
    rootd_socket: sock,
    state_dir: stateDir,
    log_level: 'INFO',
  }), { mode: 0o640 });
  if (user) {
    fs.chownSync(stateDir, user.uid, user.gid);
    fs.chownSync(agentCfg, 0, user.gid);
  }
  // The token through the environment, not the command line: never in ps.
  const reg = await runAsync([path.join(DIST, 'tuxsec-agent.js'), 'register', '--server', url, '--config', agentCfg], 60_000, { TUXSEC_ENROLL_TOKEN: tok.json.token });
  if (reg.code !== 0) fail(`cannot register the agent: ${reg.stderr.trim()}`, server);
  const agentId = /agent_id:\s*"?([0-9a-f-]{36})/.exec(fs.readFileSync(agentCfg, 'utf8'))?.[1];
  if (!agentId) fail('cannot find agent_id in the agent config after registration');
  say(`[4/6] enrolled with a one-time token: tuxsec-agent register -> agent ${agentId}`);

  const agent = start('tuxsec-agent', [path.join(DIST, 'tuxsec-agent.js'), '--config', agentCfg], user ? { uid: user.uid, gid: user.gid } : {});
  await waitUntil('tuxsec-agent to start', () => /started in pull mode/.test(agent.out()), agent);
  say(`[5/6] tuxsec-agent running in pull mode (long-poll) as ${user ? `user "${user.name}"` : `uid ${process.getuid()}`}`);

  say('[6/6] jobs (tuxsec-server jobs submit AGENT MODULE ACTION --wait 20):');
  const latencies = [];
  for (const [module, action] of JOBS) {
    const r = await serverCli(serverCfg, ['jobs', 'submit', agentId, module, action, '--wait', '20']);
    const job = r.json?.job;
    if (!job) fail(`cannot submit ${module} ${action}: ${r.stderr.trim()}`, agent);
    if (job.status !== 'completed') fail(`job ${module} ${action} ended ${job.status}: ${JSON.stringify(job.result)}`, agent);
    const ms = Date.parse(job.finished_at) - Date.parse(job.created_at);
    latencies.push(ms);
    const text = JSON.stringify(job.result.output);
    say(`\n  ${module} ${action}: ${job.status}, submit -> result stored in ${ms} ms`);
    say(`    ${text.length > 300 ? text.slice(0, 297) + '...' : text}`);
  }
  latencies.sort((a, b) => a - b);
  say(`\ndispatch latency (submit -> result stored, server clock): median ${latencies[Math.floor(latencies.length / 2)]} ms, max ${latencies[latencies.length - 1]} ms over ${latencies.length} jobs`);
  say('stopping the agent, rootd and the server; removing the temp dir');
  await stopAll();
  say('done');
}

main().catch(async (e) => {
  process.stderr.write(`demo: ${e instanceof DemoError ? e.message : (e.stack ?? String(e))}\n`);
  await stopAll();
  process.exit(1);
});
