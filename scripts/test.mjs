// Runs the test suite through node's test runner. Two tiers:
// - test/unit/**: in-process tests of pure code (validators, framing, dispatcher, registry, agent
//   journal and outbox...). They need no root, no build and no other process: `--unit` runs only
//   them, as any user, in seconds.
// - every other test/**/*.test.ts: the real programs as real processes, as root (rootd, real users,
//   firewalld in a network namespace, TLS). The full run (no `--unit`) builds first and runs both tiers.
// Other arguments filter files by substring.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const UNIT_DIR = path.join('test', 'unit');

function find(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    if (statSync(p).isDirectory()) return find(p);
    return p.endsWith('.test.ts') ? [p] : [];
  });
}

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => a !== '--unit');
const files = find(unitOnly ? UNIT_DIR : 'test')
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const needsRoot = files.some((f) => !f.startsWith(UNIT_DIR + path.sep));
if (needsRoot) {
  // The real-process tests start daemons as root and real users; as root, make sure the Debian
  // packages they drive are there (a no-op when they are), and build the programs they start.
  if (process.getuid() !== 0) {
    console.error('the real-process tests must run as root: they start rootd as root, create test users and a network namespace');
    console.error('without root, run the unit tier: npm run test:unit');
    process.exit(1);
  }
  const deps = spawnSync('/bin/bash', ['scripts/test-deps.sh'], { stdio: 'inherit' });
  if (deps.status !== 0) process.exit(deps.status ?? 1);
  const b = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
// The unit tier alone is the quick check after an edit: it runs a fifth of the generated
// property cases unless told otherwise. The full run (CI) keeps every case.
const env = { ...process.env };
if (unitOnly && env.TUXSEC_PROPERTY_RUNS === undefined) env.TUXSEC_PROPERTY_RUNS = '0.2';
// Spec output for people; a TAP copy to count results for the closing line.
const work = mkdtempSync(path.join(tmpdir(), 'tuxsec-tap-'));
const tap = path.join(work, 'results.tap');
// The unit tier alone runs in one process: a process per file would spend most of its time
// starting node and the TypeScript loader again for each of them.
let entries = files;
if (unitOnly) {
  const all = path.join(work, 'unit.test.mjs');
  writeFileSync(all, files.map((f) => `await import(${JSON.stringify(pathToFileURL(path.resolve(f)).href)});\n`).join(''));
  entries = [all];
}
const r = spawnSync(
  process.execPath,
  [
    '--import', 'tsx', '--test',
    // Unit tests share nothing, so they run side by side; real-process tests share users, ports and namespaces.
    `--test-concurrency=${needsRoot ? 1 : 2}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...entries,
  ],
  { stdio: 'inherit', env },
);
const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
const skipped = count('skipped') + count('todo');
console.log(`\n${count('pass')} passed, ${count('fail') + count('cancelled')} failed${skipped ? `, ${skipped} skipped` : ''}`);
rmSync(work, { recursive: true, force: true });
process.exit(r.status ?? 1);
