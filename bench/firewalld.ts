// Benchmark: firewalld queries through tuxsec-rootd (one persistent connection, sequential
// requests) against the same queries through firewall-cmd processes, in one run, against a
// real firewalld in a network namespace. Prints a markdown table of ops/s and the ratio.
// Run as root after a build: npm run build && node --import tsx bench/firewalld.ts
import { performance } from 'node:perf_hooks';
import { startFirewalldNetns } from '../test/helpers/firewalld-netns.ts';
import { startRootd } from '../test/helpers/rootd.ts';

const ROOTD_MS = Number(process.env.BENCH_MS ?? 3000);
const CMD_OPS = Number(process.env.BENCH_CMD_OPS ?? 20);

interface Row {
  query: string;
  rootdOps: number;
  rootdP50: number;
  cmdOps: number;
  cmdP50: number;
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function timeFor(ms: number, fn: () => Promise<unknown>): Promise<{ ops: number; lat: number[] }> {
  const lat: number[] = [];
  for (let i = 0; i < 50; i++) await fn(); // warm-up
  const start = performance.now();
  while (performance.now() - start < ms) {
    const t = performance.now();
    await fn();
    lat.push(performance.now() - t);
  }
  return { ops: lat.length / ((performance.now() - start) / 1000), lat };
}

async function timeCount(n: number, fn: () => Promise<unknown>): Promise<{ ops: number; lat: number[] }> {
  const lat: number[] = [];
  await fn();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    lat.push(performance.now() - t);
  }
  return { ops: n / ((performance.now() - start) / 1000), lat };
}

const fw = await startFirewalldNetns();
const rootd = await startRootd({ config: { log_level: 'warn' } });
const rows: Row[] = [];
try {
  const c = rootd.client;
  const cases: Array<[string, () => Promise<unknown>, string[]]> = [
    ['list_zones', () => c.execute('firewalld', 'list_zones', {}), ['--get-zones']],
    ['get_zone public', () => c.execute('firewalld', 'get_zone', { zone: 'public' }), ['--zone=public', '--list-all']],
  ];
  for (const [name, viaRootd, cmdArgs] of cases) {
    const r = await timeFor(ROOTD_MS, viaRootd);
    const f = await timeCount(CMD_OPS, async () => {
      const res = await fw.cmd(cmdArgs);
      if (res.code !== 0) throw new Error(`firewall-cmd ${cmdArgs.join(' ')}: ${res.stderr}`);
    });
    rows.push({ query: name, rootdOps: r.ops, rootdP50: p50(r.lat), cmdOps: f.ops, cmdP50: p50(f.lat) });
  }
} finally {
  await rootd.stop();
  await fw.stop();
}

console.log(`\nfirewalld queries: rootd (persistent connection, sequential, ${ROOTD_MS} ms) vs firewall-cmd in the netns (${CMD_OPS} runs)\n`);
console.log('| query | rootd ops/s | rootd p50 ms | firewall-cmd ops/s | firewall-cmd p50 ms | ratio |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.query} | ${r.rootdOps.toFixed(0)} | ${r.rootdP50.toFixed(2)} | ${r.cmdOps.toFixed(2)} | ${r.cmdP50.toFixed(0)} | ${(r.rootdOps / r.cmdOps).toFixed(0)}x |`,
  );
}
