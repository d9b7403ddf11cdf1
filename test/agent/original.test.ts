// The real agent (as tuxsec) and real rootd against a stand-in for the original server: no
// enrollment token, no long-poll, `command_results` in check-ins, no acknowledgment.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { AGENT_JS, certsIn, makeAgentEnv, readCredentials, registerAgent, startAgent, tempDir, until, type AgentEnv, type Proc } from './harness.ts';
import { startOriginalServer, type OriginalServer } from './original-server.ts';

let dir: string;
let server: OriginalServer;
let rootd: RootdHandle;
let env: AgentEnv;
let agent: Proc | null = null;

before(async () => {
  dir = tempDir('tsa-orig-');
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startOriginalServer({ cert: certs.serverCert, key: certs.serverKey });
  rootd = await startRootd();
  env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: rootd.socketPath, poll_interval: 1 });
});

after(async () => {
  await agent?.kill();
  await server?.close();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (env) fs.rmSync(env.dir, { recursive: true, force: true });
});

test('tuxsec-agent register works against the original server without a token', async () => {
  const r = await registerAgent(env, server.url);
  assert.equal(r.code, 0, r.stderr);
  const reg = server.registrations[0]!;
  assert.equal(reg.hostname, os.hostname());
  assert.equal(typeof reg.ip_address, 'string');
  assert.equal(typeof (reg.os_info as Record<string, unknown>).system, 'string');
  assert.equal('enrollment_token' in reg, false);
  const cfg = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.server_url, server.url);
  assert.match(readCredentials(env).api_key, /^\S+$/);
});

test('tuxsec-agent polls the original server, reports results in command_results and deletes them after the 200', async () => {
  const cfg = readCredentials(env);
  agent = startAgent(env);
  await until('a first check-in', () => server.checkins.length > 0, 10_000);
  const first = server.checkins[0]!;
  assert.equal(first.headers['x-api-key'], cfg.api_key);
  assert.equal(first.body.agent_id, cfg.agent_id);
  assert.equal(first.body.status, 'online');
  server.queue({ id: '101', module: 'systeminfo', action: 'get_hostname' });
  server.queue({ id: '102', module: 'systeminfo', action: 'get_kernel_version', params: {} });
  server.queue({ id: '103', module: 'systeminfo', action: 'no_such_action' });
  await until('three results', () => server.results.size === 3, 15_000);
  const ok = server.results.get('101')![0]!;
  assert.equal(ok.success, true);
  assert.equal((ok.output as Record<string, unknown>).hostname, os.hostname());
  assert.equal(ok.status, 'completed');
  assert.equal(server.results.get('102')![0]!.success, true);
  const bad = server.results.get('103')![0]!;
  assert.equal(bad.success, false);
  assert.equal(typeof bad.error, 'string');
  // No acknowledgment field: the 200 of the carrying check-in counted, so nothing is resent.
  await new Promise((r) => setTimeout(r, 2500));
  for (const id of ['101', '102', '103']) assert.equal(server.results.get(id)!.length, 1, `result ${id} sent once`);
  assert.equal(fs.readdirSync(path.join(env.stateDir, 'outbox')).filter((n) => n.endsWith('.json')).length, 0);
});

test('tuxsec-agent polls every poll_interval, not in a loop, and follows sync_interval', async () => {
  const gaps = (from: number) => {
    const c = server.checkins.slice(from);
    return c.slice(1).map((x, i) => x.at - c[i]!.at);
  };
  // Counted check-ins, not a fixed window: on a loaded machine a check-in itself takes a while,
  // and the next one comes an interval after it.
  let from = server.checkins.length;
  await until('four check-ins', () => server.checkins.length >= from + 4, 15_000);
  const g1 = gaps(from);
  for (const g of g1) assert.ok(g >= 900 && g < 3000, `gap ${g} ms: not about one check-in per poll_interval (1 s), gaps ${g1}`);
  server.syncInterval = 2;
  await until('a check-in that learns sync_interval 2', () => server.checkins.length > from + g1.length + 1, 5000);
  from = server.checkins.length;
  await until('three check-ins at sync_interval', () => server.checkins.length >= from + 3, 20_000);
  const g2 = gaps(from);
  for (const g of g2) assert.ok(g >= 1900 && g < 4000, `gap ${g} ms: not about one check-in per sync_interval (2 s), gaps ${g2}`);
});

test('tuxsec-agent honours Retry-After on 503', async () => {
  server.syncInterval = 1;
  server.failNext = { count: 1, status: 503, retryAfter: '3' };
  const from = server.checkins.length;
  await until('the refused check-in and the next one', () => server.checkins.length >= from + 2, 10_000);
  const gap = server.checkins[from + 1]!.at - server.checkins[from]!.at;
  assert.ok(gap >= 2900, `retried after ${gap} ms despite Retry-After: 3`);
  assert.match(agent!.out(), /cannot check in: server refused \/agents\/api\/checkin\/: 503/);
});

test('tuxsec-agent register writes nothing for an untrusted server and keeps an existing file\'s stricter mode', async () => {
  const file = path.join(env.dir, 'new', 'agent.yaml');
  const r = await run(process.execPath, [AGENT_JS, 'register', '--server', server.url, '--config', file], { timeoutMs: 30_000 });
  // Its CA is not configured yet in a brand-new file: the test CA is refused, nothing is written.
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /trusted CA|untrusted CA|self-signed/);
  assert.equal(fs.existsSync(file), false);
  // With the trust anchor in place (a config holding only ca_cert), the file is completed.
  fs.mkdirSync(path.dirname(file));
  const cfg = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(file, YAML.stringify({ ca_cert: cfg.ca_cert }), { mode: 0o600 });
  const r2 = await run(process.execPath, [AGENT_JS, 'register', '--server', server.url, '--config', file], { timeoutMs: 30_000 });
  assert.equal(r2.code, 0, r2.stderr);
  const st = fs.statSync(file);
  assert.equal(st.mode & 0o7777, 0o600, 'an existing file keeps its (stricter) mode');
  assert.equal((YAML.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>).api_key_file, path.join(path.dirname(file), 'credentials', 'api_key'));
  assert.equal(fs.statSync(path.join(path.dirname(file), 'credentials', 'api_key')).mode & 0o7777, 0o600);
});
