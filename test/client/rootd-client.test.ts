// RootdClient against a daemon written in the test that behaves like the Python rootd (one
// request per connection, closed after the answer), and against daemons that close a connection
// before or after reading the request: what was never received is sent again, what may have run
// is reported interrupted and never sent twice.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RootdClient } from '../../src/client/rootd-client.ts';
import { isTuxsecError } from '../../src/protocol/errors.ts';
import { startOneShotDaemon, type OneShotOptions } from './one-shot-daemon.ts';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-client-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function withDaemon<T>(opts: OneShotOptions, fn: (c: RootdClient, d: Awaited<ReturnType<typeof startOneShotDaemon>>) => Promise<T>): Promise<T> {
  const sub = fs.mkdtempSync(path.join(dir, 'd-'));
  const d = await startOneShotDaemon(sub, opts);
  const c = new RootdClient({ socketPath: d.socketPath, timeoutMs: 30_000 });
  try {
    return await fn(c, d);
  } finally {
    c.close();
    await d.close();
  }
}

const markers = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}-${i}`);

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTuxsecError(e), String(e));
    return { code: e.code, message: e.message };
  }
  assert.fail('resolved');
}

describe('RootdClient against a daemon that closes after each answer', () => {
  it('RootdClient completes 10 concurrent requests, each run once', async () => {
    await withDaemon({ answerDelayMs: 30 }, async (c, d) => {
      const ms = markers(10, 'con');
      const out = await Promise.allSettled(ms.map((m) => c.execute('resil', 'mark', { marker: m })));
      assert.deepEqual(
        out.map((o) => (o.status === 'fulfilled' ? o.value : String(o.reason))),
        ms.map((m) => ({ marker: m })),
      );
      for (const m of ms) assert.equal(d.received.get(m), 1, `${m} ran once`);
    });
  });

  it('RootdClient completes 10 requests in a row, as the agent sends its jobs', async () => {
    await withDaemon({}, async (c, d) => {
      const ms = markers(10, 'seq');
      const out: unknown[] = [];
      for (const m of ms) out.push(await c.execute('resil', 'mark', { marker: m }).catch((e: Error) => e.message));
      assert.deepEqual(out, ms.map((m) => ({ marker: m })));
      for (const m of ms) assert.equal(d.received.get(m), 1, `${m} ran once`);
    });
  });

  it('RootdClient holds at most 16 connections open for 40 concurrent requests and completes them all', async () => {
    await withDaemon({ answerDelayMs: 100 }, async (c, d) => {
      const ms = markers(40, 'cap');
      const out = await Promise.all(ms.map((m) => c.execute('resil', 'mark', { marker: m })));
      assert.deepEqual(out, ms.map((m) => ({ marker: m })));
      assert.ok(d.maxWaiting <= 16 && d.maxWaiting > 1, `${d.maxWaiting} requests at the daemon at once`);
    });
  });
});

describe('RootdClient when the daemon closes a connection without answering', () => {
  it('RootdClient reports interrupted, never a resend, when the daemon closes after reading the request', async () => {
    await withDaemon({ behaviour: () => 'read-and-close' }, async (c, d) => {
      const e = await codeOf(c.execute('resil', 'mark', { marker: 'once' }));
      assert.equal(e.code, 'interrupted', e.message);
      assert.match(e.message, /tuxsec-rootd closed the connection after execute_command was sent and before it answered/);
      assert.equal(d.received.get('once'), 1);
      assert.equal(d.connections, 1, 'not sent again');
    });
  });

  it('RootdClient sends a request again on a new connection when the daemon closed before reading it', async () => {
    await withDaemon({ behaviour: (n) => (n < 2 ? 'close-unread' : 'answer') }, async (c, d) => {
      assert.deepEqual(await c.execute('resil', 'mark', { marker: 'again' }), { marker: 'again' });
      assert.equal(d.received.get('again'), 1);
      assert.equal(d.connections, 3);
    });
  });

  it('RootdClient gives up with rootd-unavailable after 3 connections that all closed before reading', async () => {
    await withDaemon({ behaviour: () => 'close-unread' }, async (c, d) => {
      const e = await codeOf(c.execute('resil', 'mark', { marker: 'never' }));
      assert.equal(e.code, 'rootd-unavailable', e.message);
      assert.match(e.message, /cannot send execute_command to tuxsec-rootd at .*: the connection closed before the request reached it, 3 times/);
      assert.equal(d.received.get('never'), undefined);
      assert.equal(d.connections, 3);
    });
  });
});
