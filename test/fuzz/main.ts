/**
 * `npm run fuzz -- [--minutes N] [--seed S] [--target rootd|server|all]`: fuzzes the real daemons
 * and prints a table. Exits 1 when an invariant broke (the seed and a minimal case are printed).
 */
import { parseArgs } from 'node:util';
import { fuzzRootd, type FuzzReport } from './run-rootd.ts';
import { fuzzServer } from './run-server.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    seed: { type: 'string' },
    target: { type: 'string', default: 'all' },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, not "${values.minutes}"`);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
const targets = values.target === 'all' ? ['rootd', 'server'] : [values.target!];
const ms = (minutes * 60_000) / targets.length;
const reports: FuzzReport[] = [];
for (const t of targets) {
  if (t === 'rootd') reports.push(await fuzzRootd({ seed, ms, log: (s) => console.error(s) }));
  else if (t === 'server') reports.push(await fuzzServer({ seed, ms, log: (s) => console.error(s) }));
  else throw new Error(`unknown --target "${t}": rootd, server or all`);
}
const mib = (k: number) => (k / 1024).toFixed(0);
console.log(`\nNODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}; seed ${seed}\n`);
console.log('| target | seconds | cases | requests | broken invariants | crashes | RSS start / max / idle after (MiB) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
for (const r of reports) {
  console.log(`| ${r.target} | ${r.seconds} | ${r.cases} | ${r.requests} | ${r.failures.length} | ${r.crashes} | ${mib(r.rssStartKiB)} / ${mib(r.rssMaxKiB)} / ${mib(r.rssEndKiB)} |`);
}
for (const r of reports) for (const f of r.failures) console.log(`\n${r.target} seed ${f.seed}: "${f.violation.invariant}" ${f.violation.detail}\nreplay: --seed ${f.seed} (fast-check path ${String(f.path).slice(0, 200)})\nminimal case: ${f.reproducer}`);
process.exit(reports.some((r) => r.failures.length > 0 || r.crashes > 0) ? 1 : 0);
