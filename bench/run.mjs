// Runs the benchmarks one after another (each prints its own markdown table).
// `npm run bench` runs them all; `npm run bench -- rootd pull` only those whose file name
// contains one of the words. Run as root on a quiet machine: the figures are wall-clock.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const BENCHES = [
  ['rootd.mjs', 'rootd: ping and get_hostname vs a bare echo server; tuxsec-cli process time'],
  ['rootd-operations.ts', 'rootd: get_hostname on another connection while a long-running operation runs, vs idle'],
  ['aide.ts', 'aide check through rootd vs aide run directly; get_hostname on another connection while a check runs'],
  ['rootd-load.ts', 'rootd under one hostile caller: lost answers, memory, fairness to another caller'],
  ['firewalld.ts', 'firewalld queries through rootd vs firewall-cmd processes'],
  ['pull-dispatch.ts', 'pull mode: submit -> result stored latency'],
  ['push.ts', 'push mode: jobs/s over one keep-alive mutual-TLS connection'],
  ['delivery.ts', 'tuxsec-server submit -> result for a pull, a push and an SSH-mode agent; a push burst'],
  ['server-longpoll.ts', 'tuxsec-server holding many long-polling agents'],
  ['audit-export.ts', 'tuxsec-server audit export of 10,000 entries of 8 KiB: time to first byte, total, server peak RSS'],
  ['server-operator.ts', 'tuxsec-server operator command start-up (jobs list) vs node -e 0'],
  ['console.ts', 'web console with 2,000 agents: dashboard and agent-list server time, first render in chromium, compressed JS+CSS'],
  ['ssh.ts', 'SSH mode: one call through sshd and tuxsec-shell vs tuxsec-shell and tuxsec-cli alone'],
];

const want = process.argv.slice(2);
let failed = 0;
for (const [file, what] of BENCHES) {
  if (want.length && !want.some((w) => file.includes(w))) continue;
  console.log(`\n# ${file}: ${what}\n`);
  const args = file.endsWith('.ts') ? ['--import', 'tsx', path.join('bench', file)] : [path.join('bench', file)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`(${file} exited with ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
