// rootd while a long-running operation runs (issue 10): requests/s and latency of `systeminfo
// get_hostname` on another connection, idle against with an operation running (the test
// plugin's `loop`, which reports progress every 50 ms until cancelled). Rounds alternate idle and
// busy, so drift of a shared machine shows as spread within a column rather than as a difference.
// Run: npm run bench -- rootd-operations (as root).
import { RootdClient } from '../src/client/rootd-client.ts';
import { pluginDir, writeLongRunningPlugin } from '../test/helpers/plugin.ts';
import { startRootd } from '../test/helpers/rootd.ts';
import { RATE_HEADER, rateRatio, rateRow, sequential, type Rate } from './get-hostname.ts';

const ROUND_MS = Number(process.env.BENCH_MS ?? 2000);
const ROUNDS = 3;

const plugins = pluginDir();
writeLongRunningPlugin(plugins);
const d = await startRootd({
  config: { plugins_dir: plugins, log_level: 'error', modules: { firewalld: { enabled: false } }, rate_limit: { requests_per_second: 1e7, burst: 1e7 } },
});
const client = new RootdClient({ socketPath: d.socketPath });
try {
  const rows: Record<'idle' | 'busy', Rate[]> = { idle: [], busy: [] };
  await sequential(d.socketPath, ROUND_MS); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    rows.idle.push(await sequential(d.socketPath, ROUND_MS));
    const started = await client.start('longmod', 'loop');
    if (!('operation' in started)) throw new Error('loop did not start as an operation');
    rows.busy.push(await sequential(d.socketPath, ROUND_MS));
    const st = await client.operationCancel(started.operation.id);
    if (st.state !== 'cancelled') throw new Error(`operation ended ${st.state}`);
  }
  console.log(
    [
      `## get_hostname on another connection while a long operation runs (${ROUNDS} rounds of ${ROUND_MS / 1000} s each, alternating; node ${process.version})\n`,
      ...RATE_HEADER,
      rateRow('no operation', rows.idle),
      rateRow('longmod loop running', rows.busy),
      `\n${rateRatio(rows.idle, rows.busy)}`,
    ].join('\n'),
  );
} finally {
  client.close();
  await d.stop();
}
