// The README's first command: scripts/demo.mjs runs the whole pull-mode chain and leaves nothing
// behind (no temp dir, no process), also when interrupted with Ctrl-C.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/rootd.ts';
import { startProc, until } from './harness.ts';

const DEMO = path.join(ROOT, 'scripts/demo.mjs');

function demoDir(out: string): string {
  const m = /TuxSec demo in (\S+)/.exec(out);
  assert.ok(m, out);
  return m[1]!;
}

function childPids(out: string): number[] {
  // Every process the demo started carries the demo's temp dir on its command line.
  const dir = demoDir(out);
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('scripts/demo.mjs enrolls an agent, runs jobs, prints results and cleans up', async () => {
  const p = startProc(process.execPath, [DEMO], { env: { HOME: os.tmpdir() } });
  const x = await p.exited;
  const out = p.out();
  assert.equal(x.code, 0, out);
  for (const action of ['get_hostname', 'get_uptime', 'get_info']) assert.match(out, new RegExp(`systeminfo ${action}: completed`));
  assert.match(out, new RegExp(`"hostname":"${os.hostname()}"`));
  assert.match(out, /dispatch latency \(submit -> result stored, server clock\): median \d+ ms/);
  assert.equal(fs.existsSync(demoDir(out)), false, 'temp dir removed');
  assert.deepEqual(childPids(out), []);
});

test('scripts/demo.mjs stops everything it started on Ctrl-C', async () => {
  const p = startProc(process.execPath, [DEMO], { env: { HOME: os.tmpdir() } });
  await until('the agent to run', () => /\[5\/6\]/.test(p.out()) || p.proc.exitCode !== null, 60_000);
  const started = childPids(p.out());
  assert.ok(started.length >= 3, `server, rootd and agent running: ${started}`);
  process.kill(p.proc.pid!, 'SIGINT');
  const x = await p.exited;
  assert.equal(x.code, 130, p.out());
  assert.equal(fs.existsSync(demoDir(p.out())), false);
  await until('every started process to be gone', () => started.every((pid) => !fs.existsSync(`/proc/${pid}`)), 3000);
});
