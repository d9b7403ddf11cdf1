import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nullAudit } from '../../../src/rootd/audit.ts';
import { createRootdServer } from '../../../src/rootd/server.ts';
import { fakePeerCred, harness, quiet } from '../helpers.ts';

/** Sends one line and reads one answer line, as the Python client does. */
function oneShot(socketPath: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        s.destroy();
        resolve(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      }
    });
    s.on('error', reject);
    s.write(line + '\n');
  });
}

// The socket side in-process, on a socket in a temporary directory: the peer is whoever the
// fake credential source says (the real SO_PEERCRED path is driven by test/rootd/ as real users).
describe('rootd server with a fake peer-credential source', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-unit-'));
  const socketPath = path.join(dir, 'rootd.sock');
  const cred = fakePeerCred();
  let server: net.Server;
  before(async () => {
    const h = await harness();
    server = createRootdServer({
      dispatcher: h.dispatcher,
      log: quiet,
      audit: nullAudit,
      peerCred: cred.source,
      rules: () => ({ allowedUids: new Set([1000]), readOnlyUids: new Set([1001]) }),
      limits: () => ({
        maxMessageBytes: 4096,
        maxConnections: 16,
        maxConnectionsPerUid: 8,
        reservedConnections: 2,
        idleTimeoutMs: 0,
        maxInflightPerConnection: 4,
      }),
    }).server;
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('createRootdServer serves root, allowed and read-only peers', async () => {
    for (const uid of [0, 1000, 1001]) {
      cred.next = { uid };
      assert.deepEqual(await oneShot(socketPath, '{"type":"ping","request_id":"a"}'), { type: 'success', request_id: 'a', data: { pong: true } }, `uid ${uid}`);
    }
  });

  it('createRootdServer refuses a peer not in the rules, and one whose credentials cannot be read', async () => {
    cred.next = { uid: 1002 };
    const other = await oneShot(socketPath, '{"type":"ping","request_id":"a"}');
    assert.equal(other.request_id, 'unknown');
    assert.deepEqual(other.data, {
      error: 'permission denied: uid 1002 may not use tuxsec-rootd (add the user to allowed_users in rootd.yaml)',
      code: 'permission-denied',
    });
    cred.next = null;
    const unknown = await oneShot(socketPath, '{"type":"ping","request_id":"a"}');
    assert.match((unknown.data as { error: string }).error, /^permission denied: an unknown peer may not use tuxsec-rootd/);
  });

  it('createRootdServer answers a line over max_message_bytes with message-too-large', async () => {
    cred.next = { uid: 0 };
    const res = await oneShot(socketPath, JSON.stringify({ type: 'ping', request_id: 'x'.repeat(5000) }));
    assert.deepEqual(res.data, { error: 'Invalid message: line longer than 4096 bytes', code: 'message-too-large' });
  });
});
