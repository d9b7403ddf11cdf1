// The operation timeout of aide's and clamav's long-running actions follows the module's own
// timeout setting (rootd.yaml modules.<m>.settings): raising `timeout` or `scan_timeout` past the
// 6 h default needs no operation_timeout as well. Real rootd, real aide and clamscan (each run
// fails at once here: no database, no signatures; the operation's timeout is what is looked at).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { OperationInfo } from '../../src/protocol/messages.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { cli, startNoWait } from '../helpers/cli.ts';

describe('aide and clamav operations take their timeout from the module settings', () => {
  let dir: string;
  let d: RootdHandle;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-tt-'));
    mkdirSync(path.join(dir, 'db'));
    mkdirSync(path.join(dir, 'signatures'));
    writeFileSync(path.join(dir, 'aide.conf'), `database_in=file:${dir}/db/aide.db\ndatabase_out=file:${dir}/db/aide.db.new\n${dir}/db p+u+g\n`);
    writeFileSync(path.join(dir, 'scan-me'), 'hello\n');
    d = await startRootd({
      config: {
        modules: {
          firewalld: { enabled: false },
          // 8 h and 10 h: above the 6 h the actions used to declare.
          aide: { settings: { config: path.join(dir, 'aide.conf'), report_file: path.join(dir, 'last.json'), timeout: 8 * 3600 } },
          clamav: { settings: { database_dir: path.join(dir, 'signatures'), clamd_socket: null, scan_roots: [dir], scan_timeout: 10 * 3600, update_timeout: 120 } },
        },
      },
    });
  });
  after(async () => {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('module-info declares the setting (plus 30 s, so the tool answers its own timeout first)', async () => {
    const of = async (m: string) => {
      const r = await cli(d.socketPath, null, 'module-info', m);
      assert.equal(r.status, 0, r.stderr);
      const caps = (JSON.parse(r.stdout) as { capabilities: Array<{ name: string; long_running?: { timeout_seconds: number } }> }).capabilities;
      return Object.fromEntries(caps.filter((c) => c.long_running).map((c) => [c.name, c.long_running!.timeout_seconds]));
    };
    assert.deepEqual(await of('aide'), { init: 8 * 3600 + 30, check: 8 * 3600 + 30, update: 8 * 3600 + 30 });
    assert.deepEqual(await of('clamav'), { scan: 10 * 3600 + 30, update_signatures: 120 + 30 });
  });

  it('an operation started runs under that timeout, with no operation_timeout in rootd.yaml', async () => {
    for (const [m, a, params, want] of [
      ['aide', 'check', [], 8 * 3600 + 30],
      ['clamav', 'scan', [`paths=["${path.join(dir, 'scan-me')}"]`], 10 * 3600 + 30],
    ] as const) {
      const id = await startNoWait(d.socketPath, null, m, a, ...params);
      const r = await cli(d.socketPath, null, 'operation', 'status', id);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as OperationInfo).timeout_seconds, want, `${m} ${a}`);
    }
  });
});
