/**
 * SSH-mode latency with real processes on loopback: `ssh tuxsec@127.0.0.1 tuxsec-cli execute
 * systeminfo get_hostname` through a real sshd (authorized_keys `command=` tuxsec-shell), against
 * the same call without ssh (tuxsec-shell -c, and tuxsec-cli alone) to show what each layer
 * costs. A new ssh connection per call, as the original server makes them. Prints a markdown
 * table. Needs root (sshd, rootd, the tuxsec user).
 *
 *   npm run build && node --import tsx bench/ssh.ts [calls]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../test/helpers/rootd.ts';
import { ssh, startSshMode } from '../test/helpers/sshd.ts';

const N = Number(process.argv[2] ?? 20);
const COMMAND = 'tuxsec-cli execute systeminfo get_hostname';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function measure(call: () => { status: number | null; stderr: string }): number[] {
  const times: number[] = [];
  for (let i = 0; i < N + 2; i++) {
    const t = performance.now();
    const r = call();
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`call failed: ${r.stderr}`);
    // The first two warm the page cache.
    if (i >= 2) times.push(ms);
  }
  return times.sort((a, b) => a - b);
}

const m = await startSshMode();
try {
  const env = { PATH: '/usr/bin:/bin', TUXSEC_SOCKET: m.rootd.socketPath };
  const rows: Array<[string, number[]]> = [
    ['ssh -> sshd -> tuxsec-shell -> tuxsec-cli (in process) -> rootd', measure(() => ssh(m.keyed, m.keys.key, COMMAND))],
    ['tuxsec-shell -c (no ssh)', measure(() => spawnSync(path.join(ROOT, 'bin/tuxsec-shell'), ['--config', path.join(m.work, 'shell.yaml'), '-c', COMMAND], { encoding: 'utf8', env }))],
    ['tuxsec-cli alone', measure(() => spawnSync(path.join(ROOT, 'bin/tuxsec-cli'), ['execute', 'systeminfo', 'get_hostname'], { encoding: 'utf8', env }))],
  ];
  console.log(`\nSSH mode, ${N} calls each (new connection and processes per call), ms\n`);
  console.log('| path | p50 | p95 | max |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, t] of rows) console.log(`| ${name} | ${pct(t, 50).toFixed(1)} | ${pct(t, 95).toFixed(1)} | ${t[t.length - 1]!.toFixed(1)} |`);
} finally {
  await m.stop();
}
