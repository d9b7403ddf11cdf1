// A hostile daemon at rootd's socket path (an impostor, or a broken daemon) answering with JSON
// that is not an answer of rootd's: the client must end the request with a TuxsecError, never
// throw from a socket event (which would crash the agent or the CLI).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RootdClient } from '../../src/client/rootd-client.ts';
import { isTuxsecError } from '../../src/protocol/errors.ts';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-impostor-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Answers every request line with `answer(request_id)` and keeps the connection open. */
async function impostor(name: string, answer: (id: string) => string): Promise<{ socketPath: string; close: () => Promise<void> }> {
  const socketPath = path.join(dir, `${name}.sock`);
  const socks = new Set<net.Socket>();
  const server = net.createServer((c) => {
    socks.add(c);
    c.on('error', () => {});
    let buf = '';
    c.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const req = JSON.parse(buf.slice(0, nl)) as { request_id: string };
      c.write(answer(req.request_id) + '\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of socks) c.destroy();
        server.close(() => resolve());
      }),
  };
}

const cases: Array<[string, (id: string) => string]> = [
  ['null', () => 'null'],
  ['a number', () => '42'],
  ['a refusal without data', () => JSON.stringify({ type: 'error', request_id: 'unknown' })],
  ['an error answer without data', (id) => JSON.stringify({ type: 'error', request_id: id })],
  ['a success answer without data', (id) => JSON.stringify({ type: 'success', request_id: id })],
];

describe('RootdClient against an impostor sending JSON that is no answer', () => {
  for (const [what, answer] of cases) {
    it(`RootdClient ends a request with a TuxsecError when the daemon sends ${what}`, async () => {
      const d = await impostor(what.replace(/\W+/g, '-'), answer);
      const c = new RootdClient({ socketPath: d.socketPath, timeoutMs: 1500 });
      try {
        await assert.rejects(c.execute('firewalld', 'get_status'), (e: unknown) => {
          assert.ok(isTuxsecError(e), `not a TuxsecError: ${String(e)}`);
          return true;
        });
      } finally {
        c.close();
        await d.close();
      }
    });
  }
});
