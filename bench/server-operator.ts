/**
 * Start-up cost of an operator command: `tuxsec-server jobs list` against a real running
 * tuxsec-server (TLS, SQLite, a few jobs queued), next to `node -e 0`, each with and without
 * NODE_EXTRA_CA_CERTS (which makes every Node process parse the whole system CA bundle).
 * Prints a markdown table of wall time, CPU time (user + system: what a busy machine does not
 * inflate as much) and peak RSS per call (median and p90 of N calls).
 *
 *   npm run build && node --import tsx bench/server-operator.ts [calls]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OperatorClient } from '../src/server/operator-client.ts';
import { startServer } from '../test/helpers/server.ts';

const CALLS = Number(process.argv[2] ?? 20);
const ROOT = path.resolve(import.meta.dirname, '..');
const LAUNCHER = path.join(ROOT, 'bin/tuxsec-server');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

const srv = await startServer({ config: { log_level: 'warn' } });
try {
  const op = new OperatorClient({ url: srv.url, adminToken: srv.adminToken, ca: (await import('node:fs')).readFileSync(srv.certs.ca) });
  for (let i = 0; i < 5; i++) await op.submitJob({ agent_id: 'no-such-agent', module: 'systeminfo', action: 'get_hostname' }).catch(() => undefined);
  await op.close();

  const clean: NodeJS.ProcessEnv = { ...process.env };
  delete clean.NODE_EXTRA_CA_CERTS;
  const envs: Array<[string, NodeJS.ProcessEnv]> = [['unset', clean]];
  if (existsSync(CA_BUNDLE)) envs.push([`set (${CA_BUNDLE})`, { ...clean, NODE_EXTRA_CA_CERTS: CA_BUNDLE }]);
  const commands: Array<[string, string[]]> = [
    ['node -e 0', ['-e', '0']],
    ['tuxsec-server jobs list', [LAUNCHER, 'jobs', 'list', '--config', srv.configPath, '--server', srv.url]],
  ];

  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  console.log(`## operator command start-up: ${CALLS} calls each, one after another\n`);
  console.log('| command | NODE_EXTRA_CA_CERTS | wall p50 ms | wall p90 ms | CPU p50 ms | peak RSS p50 MiB |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const [name, args] of commands) {
    for (const [envName, env] of envs) {
      const wall: number[] = [];
      const rss: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < CALLS + 1; i++) {
        const t = performance.now();
        // GNU time reports the child's peak RSS (KiB) and user and system seconds on stderr's last line.
        const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', process.execPath, ...args], { env, encoding: 'utf8', timeout: 30_000 });
        const ms = performance.now() - t;
        if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr}`);
        if (i === 0) continue; // the first call warms the page cache
        wall.push(ms);
        const [kib, user, sys] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
        rss.push(kib! / 1024);
        cpu.push((user! + sys!) * 1000);
      }
      console.log(`| ${name} | ${envName} | ${pct(wall, 50).toFixed(0)} | ${pct(wall, 90).toFixed(0)} | ${pct(cpu, 50).toFixed(0)} | ${pct(rss, 50).toFixed(1)} |`);
    }
  }
  console.log(`\n(wall = spawn to exit, measured by the parent; CPU = the command's user + system time, 10 ms resolution; the server runs on the same cores; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)`);
} finally {
  await srv.stop();
  srv.cleanup();
}
