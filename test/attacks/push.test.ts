// Issue 9, push mode against an attacker on the network: the Python agent's listener spoke plain
// HTTP and never checked the key (OMIGOD: a request without auth ran as root). The real agent as the
// tuxsec user in front of the real rootd; rootd's audit log shows whether anything ran.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { makeCerts } from '../helpers/certs.ts';
import { tempDir, until } from '../agent/harness.ts';
import { API_KEY, CURL, startPushAgent, type PushAgent } from '../agent/push-harness.ts';
import { run } from '../../src/os/exec.ts';
import { RootdClient } from '../../src/client/rootd-client.ts';
import { loadConfig } from '../../src/agent/config.ts';
import { Executor } from '../../src/agent/executor.ts';
import { Journal } from '../../src/agent/journal.ts';
import { clientKey, PushServer, type PushLimits } from '../../src/agent/push.ts';

let h: PushAgent;
const UNAUTHORIZED_TEXT = '{"success":false,"result":{},"error":"cannot accept request: missing or invalid X-API-Key","code":"unauthorized"}';

// --tls-min-v1.0 lowers Node's own default: the listener's minVersion alone must refuse TLS 1.0/1.1.
before(async () => {
  h = await startPushAgent({ extraEnv: { NODE_OPTIONS: '--tls-min-v1.0' } });
});

after(async () => {
  await h?.stop();
});

const UPTIME = JSON.stringify({ module: 'systeminfo', action: 'get_uptime', params: {} });

/** A mutual-TLS connection to the agent from `localAddress` (any 127.x.y.z: another client). */
function tlsFrom(localAddress: string): tls.TLSSocket {
  return tls.connect({
    socket: net.connect({ host: '127.0.0.1', port: h.port, localAddress }),
    servername: 'localhost',
    ca: fs.readFileSync(h.certs.ca),
    cert: fs.readFileSync(h.certs.clientCert),
    key: fs.readFileSync(h.certs.clientKey),
  });
}

/** A mutual-TLS connection speaking raw HTTP/1.1; `got()` is what came back. */
async function rawTls(localAddress = '127.0.0.1'): Promise<{ sock: tls.TLSSocket; got: () => string }> {
  const sock = tlsFrom(localAddress);
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  let got = '';
  sock.on('data', (c: Buffer) => (got += c.toString()));
  sock.on('error', () => {});
  return { sock, got: () => got };
}

// First, while the agent is fresh: Node looks for connections past headersTimeout only every
// connectionsCheckingInterval (default 30 s from the listen), so without a short interval a slow
// client started now keeps its slot for about 30 s instead of headersTimeout's 10 s.
test('push a client that never finishes its header block is closed soon after headersTimeout', async () => {
  const { sock } = await rawTls();
  try {
    const t0 = Date.now();
    sock.write('GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await until('the connection closed', () => sock.destroyed || sock.readableEnded || sock.closed, 40_000, 100);
    const secs = (Date.now() - t0) / 1000;
    assert.ok(secs >= 9 && secs < 20, `closed after ${secs} s (headersTimeout 10 s)`);
  } finally {
    sock.destroy();
  }
});

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

/**
 * The agent's own push server in this process, with `limits`, in front of a rootd socket that does not
 * exist (nothing runs; /health answers 200 "unhealthy" to the right key).
 */
async function withPushServer(limits: Partial<PushLimits>, fn: (server: PushServer, port: number, certs: Awaited<ReturnType<typeof makeCerts>>) => Promise<void>): Promise<void> {
  const dir = tempDir('tsa-pushsrv-');
  const certs = await makeCerts(path.join(dir, 'certs'));
  fs.chmodSync(certs.serverKey, 0o600);
  const journal = Journal.open(dir, { keepResults: { maxEntries: 10, maxBytes: 65536 } });
  const rootd = new RootdClient({ socketPath: path.join(dir, 'no-rootd.sock') });
  const log = { info() {}, warn() {}, error() {} };
  const server = new PushServer(
    { host: '127.0.0.1', port: 0, tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca }, version: 'test', limits },
    { executor: new Executor({ rootd, journal, sink: 'journal' }), journal, rootd, apiKey: API_KEY, log },
  );
  try {
    await server.listen();
    await fn(server, (server.server.address() as net.AddressInfo).port, certs);
  } finally {
    await server.close();
    journal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('push past its budget of wrong keys a client gets 429 before the comparison, even for the right key', async () => {
  // The agent's own server code with a budget of one wrong key that refills in 10 s, so the check does
  // not race the refill (the default, 5 a second, gives a token back every 200 ms, about what one TLS
  // handshake takes on a loaded machine). The real agent's guessing limit is tested above.
  await withPushServer({ authFailuresPerSec: 0.1 }, async (_server, port, certs) => {
    const get = (localAddress: string, key: string) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1', port, localAddress, path: '/health', method: 'GET', servername: 'localhost', agent: false,
            ca: fs.readFileSync(certs.ca), cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey),
            headers: { 'x-api-key': key },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const guesser = '127.0.0.20';
    assert.equal(await get(guesser, API_KEY), 200, 'the right key before any guess');
    assert.equal(await get(guesser, 'guess-1'), 401, 'the one wrong key of the budget');
    assert.equal(await get(guesser, 'guess-2'), 429, 'past the budget');
    // Were the key compared first, the right one would get 200 here and a guesser would learn it.
    assert.equal(await get(guesser, API_KEY), 429, 'the right key past the budget');
    // The budget is the guesser's alone.
    assert.equal(await get('127.0.0.21', API_KEY), 200, 'another client');
  });
});

test('push an api_key shorter than 32 characters is a config error naming the key, never showing it', () => {
  const dir = tempDir('tsa-shortkey-');
  try {
    const file = path.join(dir, 'agent.yaml');
    fs.writeFileSync(file, 'mode: push\n');
    const short = 'Sh0rtKey-123456789';
    assert.throws(
      () => loadConfig(file, {}, { env: { TUXSEC_API_KEY: short } }),
      (e: Error) => /cannot use key "api_key" in push mode: it is shorter than 32 characters/.test(e.message) && !e.message.includes(short),
    );
    // Pull mode's key is the server's to choose; a long push key passes.
    assert.equal(loadConfig(file, { mode: 'pull' }, { env: { TUXSEC_API_KEY: short } }).api_key, short);
    assert.equal(loadConfig(file, {}, { env: { TUXSEC_API_KEY: API_KEY } }).api_key, API_KEY);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('push Expect: 100-continue is answered 100 only after the key and Origin checks', async () => {
  const ask = async (headers: string, body: string | null) => {
    const { sock, got } = await rawTls('127.0.0.22');
    try {
      sock.write(`POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${UPTIME.length}\r\nExpect: 100-continue\r\n${headers}\r\n`);
      await until('an answer', () => /\r\n\r\n/.test(got()), 10_000);
      if (body !== null) {
        sock.write(body);
        await until('the final answer', () => /HTTP\/1\.1 200/.test(got()), 10_000);
      } else {
        await until('the connection closed', () => sock.destroyed || sock.readableEnded, 10_000);
      }
      return got();
    } finally {
      sock.destroy();
    }
  };
  const wrong = await ask('X-API-Key: wrong\r\n', null);
  assert.match(wrong, /^HTTP\/1\.1 401 /, wrong);
  assert.doesNotMatch(wrong, /100 Continue/);
  assert.ok(wrong.endsWith(UNAUTHORIZED_TEXT), wrong);
  const web = await ask(`X-API-Key: ${API_KEY}\r\nOrigin: https://evil.example\r\n`, null);
  assert.match(web, /^HTTP\/1\.1 403 /, web);
  assert.doesNotMatch(web, /100 Continue/);
  const ok = await ask(`X-API-Key: ${API_KEY}\r\n`, JSON.stringify({ module: 'systeminfo', action: 'get_info', params: {} }).padEnd(UPTIME.length));
  assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, ok);
  await assertNothingRan();
});

test('push sixteen client addresses cannot take every connection', async () => {
  const socks: tls.TLSSocket[] = [];
  try {
    const settled: Array<Promise<void>> = [];
    for (let a = 2; a < 18; a++) {
      for (let i = 0; i < 16; i++) {
        const s = tlsFrom(`127.0.1.${a}`);
        s.on('error', () => {});
        socks.push(s);
        settled.push(new Promise<void>((resolve) => s.once('secureConnect', () => resolve()).once('close', () => resolve())));
      }
    }
    await Promise.all(settled);
    const r = await h.request('GET', '/health', { localAddress: '127.0.0.23' });
    assert.equal(r.status, 200, r.body);
  } finally {
    for (const s of socks) s.destroy();
  }
});

test('push counts an IPv6 client by its /64 and an IPv4-mapped one by its IPv4 address', () => {
  const cases: Array<[string, string]> = [
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:1:2:3', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:0000:0000:0000:0009', '2001:db8:1:2::/64'],
    ['fe80::1%lo', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['192.0.2.7', '192.0.2.7'],
  ];
  for (const [addr, key] of cases) assert.equal(clientKey(addr), key, addr);
  assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
});

test('push forgets idle clients past maxClients: the map of clients stays bounded', async () => {
  await withPushServer({ maxClients: 100 }, async (server, port) => {
    const connectFrom = (addr: string) =>
      new Promise<void>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: addr }, () => s.destroy());
        s.on('error', () => {});
        s.on('close', () => resolve());
      });
    for (let i = 0; i < 300; i++) await connectFrom(`127.0.${2 + Math.floor(i / 200)}.${1 + (i % 200)}`);
    await until('every connection closed', () => new Promise<boolean>((resolve) => server.server.getConnections((_e, n) => resolve(n === 0))));
    await connectFrom('127.0.9.1');
    await until('the last connection seen', () => new Promise<boolean>((resolve) => server.server.getConnections((_e, n) => resolve(n === 0))));
    assert.ok(server.clientCount <= 100, `${server.clientCount} clients remembered`);
  });
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
    // 8 per client address are allowed: the rest are closed at accept.
    await until('16 refused connections', () => closed >= 16, 10_000);
  } finally {
    for (const s of socks) s.destroy();
  }
});

test('push a job id sent again with another module, action or params gets 409 and runs nothing', async () => {
  const first = await h.request('POST', '/execute', { body: JSON.stringify({ id: 'reuse-1', module: 'systeminfo', action: 'get_info', params: { a: 1, b: 2 } }) });
  assert.equal(first.status, 200, first.body);
  for (const other of [
    { id: 'reuse-1', module: 'systeminfo', action: 'get_uptime', params: { a: 1, b: 2 } },
    { id: 'reuse-1', module: 'systeminfo', action: 'get_info', params: { a: 1, b: 3 } },
    { job: { id: 'reuse-1', module: 'systeminfo', action: 'get_uptime' } },
  ]) {
    const r = await h.request('POST', '/execute', { body: JSON.stringify(other) });
    assert.equal(r.status, 409, r.body);
    assert.equal(r.json.code, 'job-id-reused');
    assert.equal(r.json.success, false);
    assert.match(String(r.json.error), /cannot run job "reuse-1": this id was already used for another module, action or params/);
  }
  // The same request, its params' keys in another order: the first result.
  const again = await h.request('POST', '/execute', { body: JSON.stringify({ params: { b: 2, a: 1 }, action: 'get_info', module: 'systeminfo', id: 'reuse-1' }) });
  assert.equal(again.status, 200, again.body);
  assert.deepEqual(again.json, first.json);
  // Two at once with the same id and different requests: one runs, the other is refused.
  const ran = () => h.executions('get_hostname').length + h.executions('get_kernel_version').length;
  const before = ran();
  const [x, y] = await Promise.all([
    h.request('POST', '/execute', { body: JSON.stringify({ id: 'reuse-2', module: 'systeminfo', action: 'get_hostname' }) }),
    h.request('POST', '/execute', { body: JSON.stringify({ id: 'reuse-2', module: 'systeminfo', action: 'get_kernel_version' }) }),
  ]);
  assert.deepEqual([x.status, y.status].sort(), [200, 409], `${x.body} ${y.body}`);
  await assertNothingRan();
  assert.equal(ran() - before, 1);
});

/** Sends SIGHUP and waits until the agent has logged both halves of the reload (read or refused). */
async function sighup(): Promise<string> {
  const before = h.agent.out().length;
  h.agent.proc.kill('SIGHUP');
  const out = () => h.agent.out().slice(before);
  const lines = () => out().split('\n').filter((l) => l.includes('SIGHUP'));
  // Two lines (TLS files, api_key); the code before the fix logged one for both.
  await until('the reload', () => lines().length >= 2 || lines().some((l) => /cannot reload on SIGHUP|CA and api_key re-read/.test(l)));
  return out();
}

/** Puts the test's own files back and reloads them. */
async function restoreFiles(files: Array<[string, Buffer]>): Promise<void> {
  for (const [f, b] of files) fs.writeFileSync(f, b);
  fs.chmodSync(h.certs.serverKey, 0o600);
  fs.chmodSync(h.apiKeyFile, 0o600);
  fs.writeFileSync(h.apiKeyFile, API_KEY + '\n');
  await sighup();
  assert.equal((await h.request('GET', '/health', { localAddress: '127.0.0.29' })).status, 200);
}

const NEW_KEY = 'rotated-key-abcdefghijklmnopqrstuvwxyz0123456789';

test('push SIGHUP with TLS files that cannot be used still takes the new api_key', async () => {
  const saved: Array<[string, Buffer]> = [];
  try {
    fs.chmodSync(h.certs.serverKey, 0o640);
    fs.writeFileSync(h.apiKeyFile, NEW_KEY + '\n');
    const out = await sighup();
    assert.match(out, /ssl_key/);
    // A leaked key rotated by the operator must stop working even while a certificate is wrong.
    const old = await h.request('GET', '/health', { localAddress: '127.0.0.24' });
    assert.equal(old.status, 401, old.body);
    const rotated = await h.request('GET', '/health', { localAddress: '127.0.0.24', headers: { 'x-api-key': NEW_KEY } });
    assert.equal(rotated.status, 200, rotated.body);
  } finally {
    await restoreFiles(saved);
  }
});

test('push SIGHUP with an api_key that cannot be used still serves the new certificate', async () => {
  const other = await makeCerts(path.join(h.dir, 'sighup-cert'), { caName: 'tuxsec-test-ca-sighup' });
  const saved: Array<[string, Buffer]> = [h.certs.serverCert, h.certs.serverKey].map((f) => [f, fs.readFileSync(f)]);
  const cas = [fs.readFileSync(h.certs.ca), fs.readFileSync(other.ca)];
  try {
    const first = await h.request('GET', '/health', { localAddress: '127.0.0.25', ca: cas });
    fs.chmodSync(h.apiKeyFile, 0o640);
    fs.copyFileSync(other.serverCert, h.certs.serverCert);
    fs.copyFileSync(other.serverKey, h.certs.serverKey);
    const out = await sighup();
    assert.match(out, /api_key/);
    const fresh = await h.request('GET', '/health', { localAddress: '127.0.0.25', ca: cas });
    assert.equal(fresh.status, 200, fresh.body);
    assert.notEqual(fresh.fingerprint, first.fingerprint, 'the new certificate is served');
  } finally {
    await restoreFiles(saved);
  }
});

test('push SIGHUP with a new CA ends kept-alive connections: a busy one after its answer, an idle one at once', async () => {
  const other = await makeCerts(path.join(h.dir, 'sighup-ca'), { caName: 'tuxsec-test-ca-rotated' });
  const saved: Array<[string, Buffer]> = [[h.certs.ca, fs.readFileSync(h.certs.ca)]];
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const busy = await rawTls('127.0.0.26');
  try {
    assert.equal((await h.request('GET', '/health', { agent, localAddress: '127.0.0.27' })).status, 200);
    // Busy: a request whose body is still coming when the reload happens.
    const job = JSON.stringify({ module: 'systeminfo', action: 'get_info', params: {} });
    busy.sock.write(`POST /execute HTTP/1.1\r\nHost: x\r\nX-API-Key: ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${job.length}\r\n\r\n${job.slice(0, 5)}`);
    fs.copyFileSync(other.ca, h.certs.ca);
    await sighup();
    busy.sock.write(job.slice(5));
    await until('the busy answer and the close', () => /HTTP\/1\.1 200/.test(busy.got()) && (busy.sock.readableEnded || busy.sock.destroyed), 10_000);
    assert.match(busy.got(), /\r\nconnection: close\r\n/i);
    // Idle: closed by the reload, so the next request handshakes against the new CA, which did
    // not sign this client's certificate.
    await until('the idle connection closed', () => Object.values(agent.freeSockets).flat().length === 0, 5000).catch(() => {});
    const serverCa = [saved[0]![1]];
    await assert.rejects(h.request('GET', '/health', { agent, localAddress: '127.0.0.27', ca: serverCa }), /alert|certificate|reset|hang up/i);
    const signed = await h.request('GET', '/health', { localAddress: '127.0.0.28', ca: serverCa, clientCert: { cert: other.clientCert, key: other.clientKey } });
    assert.equal(signed.status, 200, signed.body);
  } finally {
    busy.sock.destroy();
    agent.destroy();
    await restoreFiles(saved);
  }
});
