import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRootd } from '../helpers/rootd.ts';
import { connectRaw } from '../helpers/raw.ts';

describe('rootd hostile peers', () => {
  it('rootd survives peers that hang up while being refused for max_connections', async () => {
    const d = await startRootd({ config: { max_connections: 1 } });
    try {
      const held = await connectRaw(d.socketPath);
      held.write('{"type":"ping","request_id":"h0","data":{}}\n');
      await held.next(1);
      // Each extra connection is refused with an error line; these peers reset at once.
      for (let round = 0; round < 20; round++) {
        await Promise.all(
          Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
            const s = net.createConnection(d.socketPath);
            s.on('error', () => resolve());
            s.on('connect', () => {
              s.destroy();
              resolve();
            });
          })),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(d.proc.exitCode, null, `rootd exited: ${d.log().slice(-2000)}`);
      held.write('{"type":"ping","request_id":"h1","data":{}}\n');
      const [res] = await held.next(1);
      assert.equal(res!.type, 'success');
      held.close();
    } finally {
      await d.stop();
    }
  });
});
