// Runs the test suite: builds the programs (tests start the real ones), then every
// test/**/*.test.ts file through node's test runner. Arguments filter files by substring.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

function find(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    if (statSync(p).isDirectory()) return find(p);
    return p.endsWith('.test.ts') ? [p] : [];
  });
}

const filters = process.argv.slice(2);
const files = find('test')
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// The tests start real daemons as root and real users; as root, make sure the Debian
// packages they drive are there (a no-op when they are).
if (process.getuid() !== 0) {
  console.error('the tests must run as root: they start rootd as root, create test users and a network namespace');
  process.exit(1);
}
const deps = spawnSync('/bin/bash', ['scripts/test-deps.sh'], { stdio: 'inherit' });
if (deps.status !== 0) process.exit(deps.status ?? 1);
const b = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
// Spec output for people; a TAP copy to count results for the closing line.
const tap = path.join(mkdtempSync(path.join(tmpdir(), 'tuxsec-tap-')), 'results.tap');
const r = spawnSync(
  process.execPath,
  [
    '--import', 'tsx', '--test', '--test-concurrency=1',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
const skipped = count('skipped') + count('todo');
console.log(`\n${count('pass')} passed, ${count('fail') + count('cancelled')} failed${skipped ? `, ${skipped} skipped` : ''}`);
rmSync(path.dirname(tap), { recursive: true, force: true });
process.exit(r.status ?? 1);
