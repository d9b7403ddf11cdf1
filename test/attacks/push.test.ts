// Issue 9, push mode against an attacker on the network: the Python agent's listener spoke plain
// HTTP and never checked the key (OMIGOD: a request without auth ran as root). The real agent as the
// tuxsec user in front of the real rootd; rootd's audit log shows whether anything ran.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { makeCerts } from '../helpers/certs.ts';
import { until } from '../agent/harness.ts';
import { API_KEY, CURL, startPushAgent, type PushAgent } from '../agent/push-harness.ts';
import { run } from '../../src/os/exec.ts';

let h: PushAgent;

// --tls-min-v1.0 lowers Node's own default: the listener's minVersion alone must refuse TLS 1.0/1.1.
before(async () => {
  h = await startPushAgent({ extraEnv: { NODE_OPTIONS: '--tls-min-v1.0' } });
});

after(async () => {
  await h?.stop();
});

const UPTIME = JSON.stringify({ module: 'systeminfo', action: 'get_uptime', params: {} });

/** A later job's audit record proves every earlier one is written; then get_uptime must be absent. */
async function assertNothingRan(): Promise<void> {
  const before = h.executions('get_os_info').length;
  const r = await h.request('POST', '/execute', { body: JSON.stringify({ module: 'systeminfo', action: 'get_os_info' }) });
  assert.equal(r.status, 200, r.body);
  await until('the barrier job in the audit log', () => h.executions('get_os_info').length > before);
  assert.equal(h.executions('get_uptime').length, 0, 'a refused request reached rootd');
}

test('push a wrong, missing, empty, malformed or oversized X-API-Key gets 401 with one identical body, and nothing runs', async () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['wrong', { 'x-api-key': API_KEY.slice(0, -1) + 'X' }],
    ['a prefix', { 'x-api-key': API_KEY.slice(0, 8) }],
    ['empty', { 'x-api-key': '' }],
    ['malformed', { 'x-api-key': `${API_KEY}\u00e9` }],
    ['oversized', { 'x-api-key': API_KEY + 'A'.repeat(8000) }],
  ];
  const bodies = new Set<string>();
  for (const [what, headers] of cases) {
    for (const [method, p] of [['POST', '/execute'], ['GET', '/health'], ['GET', '/nope']] as const) {
      const r = await h.request(method, p, { headers, body: method === 'POST' ? UPTIME : undefined });
      assert.equal(r.status, 401, `${what} ${method} ${p}: ${r.body}`);
      bodies.add(r.body);
    }
  }
  const missing = await h.curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data', UPTIME, `https://127.0.0.1:${h.port}/execute`]);
  assert.equal(missing.status, 401, missing.body);
  bodies.add(missing.body);
  assert.equal(bodies.size, 1, [...bodies].join('\n'));
  await assertNothingRan();
});

test('push a refused request is answered before its body is read', async () => {
  // 100 MB announced, none sent: an agent that read the body first would wait, never answer.
  const sock = tls.connect({
    host: '127.0.0.1',
    port: h.port,
    ca: fs.readFileSync(h.certs.ca),
    cert: fs.readFileSync(h.certs.clientCert),
    key: fs.readFileSync(h.certs.clientKey),
  });
  try {
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString()));
    sock.write(`POST /execute HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"module":`);
    await until('the 401', () => /^HTTP\/1\.1 401/.test(got), 10_000);
    await until('the connection closed', () => sock.destroyed || sock.readableEnded, 10_000);
  } finally {
    sock.destroy();
  }
});

test('push a request carrying Origin or Referer gets 403 even with the right key, and nothing runs', async () => {
  for (const headers of [{ origin: 'https://evil.example' } as Record<string, string>, { referer: 'https://evil.example/page' }, { origin: 'null' }]) {
    const r = await h.request('POST', '/execute', { headers, body: UPTIME });
    assert.equal(r.status, 403, JSON.stringify(headers) + r.body);
  }
  await assertNothingRan();
});

test('push without a client certificate the handshake fails (node and curl)', async () => {
  await assert.rejects(h.request('POST', '/execute', { noCert: true, body: UPTIME }));
  const r = await run(CURL, ['-sS', '--max-time', '20', '--cacert', h.certs.ca, '-H', `X-API-Key: ${API_KEY}`, `https://127.0.0.1:${h.port}/health`], { timeoutMs: 30_000 });
  assert.notEqual(r.code, 0, r.stdout);
  assert.doesNotMatch(r.stdout, /healthy/);
});

test('push a client certificate from another CA is refused', async () => {
  const other = await makeCerts(path.join(h.dir, 'intruder'), { caName: 'intruder-ca' });
  const r = await run(
    CURL,
    ['-sS', '--max-time', '20', '--cacert', h.certs.ca, '--cert', other.clientCert, '--key', other.clientKey, '-H', `X-API-Key: ${API_KEY}`, `https://127.0.0.1:${h.port}/health`],
    { timeoutMs: 30_000 },
  );
  assert.notEqual(r.code, 0, r.stdout);
  assert.doesNotMatch(r.stdout, /healthy/);
});

test('push plain HTTP is refused', async () => {
  const r = await run(CURL, ['-sS', '--max-time', '20', '-H', `X-API-Key: ${API_KEY}`, '-w', '%{http_code}', `http://127.0.0.1:${h.port}/health`], { timeoutMs: 30_000 });
  assert.notEqual(r.code, 0);
  assert.doesNotMatch(r.stdout, /healthy|^[1-5]\d\d$/);
});

test('push TLS 1.0 and 1.1 are refused', async () => {
  for (const v of ['TLSv1', 'TLSv1.1'] as const) {
    const err = await new Promise<Error | null>((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: h.port,
        minVersion: v,
        maxVersion: v,
        ciphers: 'DEFAULT@SECLEVEL=0',
        ca: fs.readFileSync(h.certs.ca),
        cert: fs.readFileSync(h.certs.clientCert),
        key: fs.readFileSync(h.certs.clientKey),
      });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(null);
      });
      s.once('error', (e) => resolve(e));
    });
    assert.ok(err, `${v} handshake succeeded`);
  }
});

test('push a body over 1 MiB gets 413 and nothing runs', async () => {
  const big = JSON.stringify({ module: 'systeminfo', action: 'get_uptime', params: { pad: 'x'.repeat(1024 * 1024 + 10) } });
  const r = await h.request('POST', '/execute', { body: big }).catch((e: Error) => ({ status: -1, body: e.message }));
  // The agent answers and closes while the client may still be writing: either is a refusal.
  assert.ok(r.status === 413 || r.status === -1, `${r.status} ${r.body}`);
  await assertNothingRan();
});

test('push guessing keys is throttled per client', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 80; i++) statuses.push((await h.request('GET', '/health', { headers: { 'x-api-key': `guess-${i}` } })).status);
  assert.ok(statuses.includes(429), statuses.join(','));
  assert.ok(statuses.every((s) => s === 401 || s === 429), statuses.join(','));
});

test('push one client cannot hold every connection', async () => {
  const socks: net.Socket[] = [];
  try {
    let closed = 0;
    for (let i = 0; i < 24; i++) {
      const s = net.connect(h.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => closed++);
      socks.push(s);
    }
    // 16 per client address are allowed: the rest are closed at accept.
    await until('8 refused connections', () => closed >= 8, 10_000);
  } finally {
    for (const s of socks) s.destroy();
  }
});
