/**
 * PushTransport against hostile agents: a real HTTPS server in this process (certificates the
 * test makes) that answers slowly or with hostile JSON.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PushTransport } from '../../../src/server/delivery/push.ts';
import { DeliveryError } from '../../../src/server/delivery/transport.ts';
import { makeCerts, type CertPaths } from '../../helpers/certs.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let dir: string;
let certs: CertPaths;
let server: https.Server;
let handler: Handler = (_req, res) => res.end('{}');
const JOB = { id: 'job-1', module: 'systeminfo', action: 'get_hostname', params: {} };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-push-transport-'));
  certs = await makeCerts(dir);
  server = https.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

function transport(timeoutMs: number): PushTransport {
  const { port } = server.address() as AddressInfo;
  return new PushTransport({ url: `https://127.0.0.1:${port}`, caFile: certs.ca }, 'k'.repeat(32), { timeoutMs, connections: 1 });
}

test('an agent dribbling its answer a byte at a time is cut off at delivery_timeout, retryable', async () => {
  const timers: NodeJS.Timeout[] = [];
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    // Each byte comes well within the idle timeouts, so only an overall deadline ends this.
    timers.push(setInterval(() => res.write(' '), 100));
  };
  const t = transport(1000);
  const started = Date.now();
  try {
    await assert.rejects(t.execute(JOB, new AbortController().signal), (e: unknown) => {
      assert.ok(e instanceof DeliveryError, String(e));
      assert.match(e.message, /no complete answer within 1000 ms \(delivery_timeout\)/);
      assert.equal(e.retryable, true);
      assert.equal(e.code, 'timeout');
      return true;
    });
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  } finally {
    for (const x of timers) clearInterval(x);
    await t.close();
  }
});

test('an answer nested 400000 deep is refused naming the depth, not a stack overflow', async () => {
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${'['.repeat(400_000)}${']'.repeat(400_000)}`);
  };
  const t = transport(30_000);
  try {
    await assert.rejects(t.execute(JOB, new AbortController().signal), (e: unknown) => {
      assert.ok(e instanceof DeliveryError, String(e));
      assert.match(e.message, /cannot read the answer of agent at .*: JSON nested deeper than 64/);
      assert.equal(e.retryable, false);
      return true;
    });
  } finally {
    await t.close();
  }
});

test('an answer with a prototype-polluting key is refused naming the key', async () => {
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"success":true,"status":"completed","result":{"a":{"__proto__":{"x":1}}}}');
  };
  const t = transport(30_000);
  try {
    await assert.rejects(t.execute(JOB, new AbortController().signal), (e: unknown) => {
      assert.ok(e instanceof DeliveryError, String(e));
      assert.match(e.message, /forbidden key "result\.a\.__proto__"/);
      return true;
    });
  } finally {
    await t.close();
  }
});

test('a refusal whose error text holds C0, C1 and bidi characters is stored with each shown as an escape', async () => {
  // ESC ] 0 ; sets a terminal's title; U+009B is the C1 CSI; U+202E turns the rest of the line around.
  const hostile = 'no\u001b]0;pwned\u0007 \u009b2J and \u202etxt.exe\nforged line';
  handler = (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: hostile }));
  };
  const t = transport(30_000);
  try {
    await assert.rejects(t.execute(JOB, new AbortController().signal), (e: unknown) => {
      assert.ok(e instanceof DeliveryError, String(e));
      assert.equal(e.message, 'cannot deliver job: the agent refused the request (HTTP 403: no\\x1b]0;pwned\\x07 \\x9b2J and \\u202etxt.exe\\x0aforged line)');
      // eslint-disable-next-line no-control-regex -- what must not be there
      assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
      return true;
    });
  } finally {
    await t.close();
  }
});
