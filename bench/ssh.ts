/**
 * SSH-mode latency with real processes on loopback: `ssh tuxsec@127.0.0.1 tuxsec-cli execute
 * systeminfo get_hostname` through a real sshd (authorized_keys `command=` tuxsec-shell), against
 * the same call without ssh (tuxsec-shell -c, and tuxsec-cli alone) to show what each layer
 * costs; then tuxsec-server's job form (src/server/delivery/ssh.ts: a job through the agent's
 * executor and journal), with a new connection per call and with the connection kept open
 * (ControlMaster). Prints a markdown table. Needs root (sshd, rootd, the tuxsec user).
 *
 *   npm run build && node --import tsx bench/ssh.ts [calls]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { ROOT } from '../test/helpers/rootd.ts';
import { ssh, startSshMode } from '../test/helpers/sshd.ts';
import { SshTransport } from '../src/server/delivery/ssh.ts';
import { jobCommandLine } from '../src/protocol/ssh-job.ts';

const N = Number(process.argv[2] ?? 20);
const COMMAND = 'tuxsec-cli execute systeminfo get_hostname';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(call: () => Promise<unknown> | { status: number | null; stderr: string }): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < N + 2; i++) {
    const t = performance.now();
    const r = await call();
    const ms = performance.now() - t;
    const sync = r as { status?: number | null; stderr?: string } | undefined;
    if (sync?.status !== undefined && sync.status !== 0) throw new Error(`call failed: ${sync.stderr}`);
    // The first two warm the page cache (and open the kept connection).
    if (i >= 2) times.push(ms);
  }
  return times.sort((a, b) => a - b);
}

const m = await startSshMode();
try {
  const env = { PATH: '/usr/bin:/bin', TUXSEC_SOCKET: m.rootd.socketPath };
  const shell = (line: string) => spawnSync(path.join(ROOT, 'bin/tuxsec-shell'), ['--config', path.join(m.work, 'shell.yaml'), '-c', line], { encoding: 'utf8', env });
  let n = 0;
  const job = () => ({ id: `bench-${process.pid}-${++n}`, module: 'systeminfo', action: 'get_hostname', params: {} });
  const endpoint = { host: '127.0.0.1', port: m.keyed.port, user: 'tuxsec', knownHost: readFileSync(m.keyed.knownHosts, 'utf8') };
  const signal = new AbortController().signal;
  const jobRow = async (keepAliveSeconds: number): Promise<number[]> => {
    const t = new SshTransport(endpoint, { identityFile: m.keys.key, stateDir: path.join(m.work, 'server'), keepAliveSeconds });
    try {
      return await measure(async () => {
        const r = await t.execute(job(), signal);
        if (r.status !== 'completed') throw new Error(`job failed: ${r.error}`);
      });
    } finally {
      await t.close();
    }
  };
  const rows: Array<[string, number[]]> = [
    ['ssh -> sshd -> tuxsec-shell -> tuxsec-cli (in process) -> rootd', await measure(() => ssh(m.keyed, m.keys.key, COMMAND))],
    ['tuxsec-shell -c (no ssh)', await measure(() => shell(COMMAND))],
    ['tuxsec-shell -c \'echo "test"\' (start-up only)', await measure(() => shell('echo "test"'))],
    ['tuxsec-cli alone', await measure(() => spawnSync(path.join(ROOT, 'bin/tuxsec-cli'), ['execute', 'systeminfo', 'get_hostname'], { encoding: 'utf8', env }))],
    ['job form: SshTransport, new connection per call', await jobRow(0)],
    ['job form: SshTransport, connection kept open (ControlMaster)', await jobRow(60)],
    ['job form: tuxsec-shell -c (no ssh; executor, journal, lock)', await measure(() => shell(jobCommandLine(job())))],
  ];
  console.log(`\nSSH mode, ${N} calls each (new processes per call), ms\n`);
  console.log('| path | p50 | p95 | max |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, t] of rows) console.log(`| ${name} | ${pct(t, 50).toFixed(1)} | ${pct(t, 95).toFixed(1)} | ${t[t.length - 1]!.toFixed(1)} |`);
} finally {
  await m.stop();
}
