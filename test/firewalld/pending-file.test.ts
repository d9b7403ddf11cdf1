// The pending-changes file is replayed as root when rootd starts: a file of the wrong shape is
// refused as a whole and logged, a well-formed one is still replayed. And a firewalld reply of
// an unexpected shape is a clear error. Against a real firewalld in a network namespace.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FirewalldModule } from '../../src/rootd/modules/firewalld/index.ts';
import { IFACE } from '../../src/rootd/modules/firewalld/dbus.ts';
import { R } from '../../src/rootd/modules/firewalld/signature.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import type { ActionContext, Logger } from '../../src/sdk/action.ts';
import { TuxsecError } from '../../src/protocol/errors.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';

let fw: FirewalldNetns;
let stateDir: string;
const started: FirewalldModule[] = [];

before(async () => {
  fw = await startFirewalldNetns();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwpending-'));
});

afterEach(async () => {
  for (const m of started.splice(0)) await m.shutdown();
  await fw.cmd(['--panic-off']);
  await fw.cmd(['--set-log-denied=off']);
});

after(async () => {
  await fw?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

/** Writes `doc` as the pending file and starts a module on it; returns what it logged. */
async function startOn(name: string, doc: unknown) {
  const file = path.join(stateDir, name);
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc), { mode: 0o600 });
  const logs: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> = [];
  const push = (level: string) => (obj: unknown, msg?: string) => void logs.push({ level, obj: obj as Record<string, unknown>, msg });
  const log: Logger = { debug: () => {}, info: push('info'), warn: push('warn'), error: push('error') };
  const mod = new FirewalldModule();
  started.push(mod);
  const reg = new ModuleRegistry(log, { check() {} });
  reg.register(mod, { enabled: true, allow_dangerous: true, settings: { pending_file: file } });
  await reg.initializeAll((_n, settings) => ({ settings, log }));
  const ctx: ActionContext = { peer: { uid: 0, gid: 0, pid: process.pid }, signal: new AbortController().signal, log, requestId: 't', progress: () => {} };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ex = (action: string, params: Record<string, unknown> = {}): Promise<any> => reg.execute('firewalld', action, params, ctx);
  return { mod, logs, ex };
}

/** One saved change, overdue, so a replay would happen at once. */
function change(snapshot: unknown, keys: string[]) {
  const past = new Date(Date.now() - 60_000).toISOString();
  return { id: '0123456789abcdef', what: 'set log denied to "all"', keys, created_at: past, confirm_by: past, snapshots: [snapshot] };
}

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MALFORMED: Array<[string, unknown, RegExp]> = [
  // Panic mode as a string: the old reader re-armed this and "restored" panic mode on (truthy).
  ['a snapshot value of the wrong type', { version: 1, pending: [change({ scope: { kind: 'panic' }, runtime: 'yes', permanent: null }, ['panic'])] }, /\/pending\/0\/snapshots\/0/],
  ['keys that are not those of the snapshots', { version: 1, pending: [change({ scope: { kind: 'log_denied' }, runtime: 'all', permanent: null }, ['zone:public'])] }, /\/pending\/0\/keys/],
  ['an unknown scope', { version: 1, pending: [change({ scope: { kind: 'lockdown' }, runtime: true, permanent: null }, ['lockdown'])] }, /\/pending\/0\/snapshots\/0/],
  ['a zone name with a newline', { version: 1, pending: [change({ scope: { kind: 'zone', name: 'a\nb' }, runtime: null, permanent: null }, ['zone:a\nb'])] }, /\/pending\/0\/snapshots\/0/],
  ['another version', { version: 2, pending: [] }, /\/version/],
  ['text that is not JSON', '{"version": 1, "pending": [', /not JSON/],
];

for (const [label, doc, why] of MALFORMED) {
  test(`pending-changes file with ${label} is refused, logged and not replayed`, async () => {
    const { logs, ex } = await startOn(`bad-${label.replace(/\W+/g, '-')}.json`, doc);
    const st = await ex('get_pending_changes');
    assert.deepEqual(st.pending, [], 'nothing re-armed');
    const refusal = logs.find((l) => l.level === 'error' && l.msg === 'refusing the pending firewalld changes file');
    assert.ok(refusal, `refusal logged: ${JSON.stringify(logs)}`);
    assert.match(String(refusal.obj.err), /^cannot replay pending firewalld changes from ".*": /);
    assert.match(String(refusal.obj.err), why);
    // Give a replay (had there been one) time to reach firewalld, then look.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual((await ex('get_pending_changes')).history, [], 'nothing rolled back');
    assert.equal((await fw.cmd(['--query-panic'])).stdout.trim(), 'no');
    assert.equal((await fw.cmd(['--get-log-denied'])).stdout.trim(), 'off');
  });
}

test('a well-formed pending-changes file is still replayed: the overdue change is rolled back', async () => {
  assert.equal((await fw.cmd(['--set-log-denied=all'])).code, 0);
  const { ex } = await startOn('good.json', { version: 1, pending: [change({ scope: { kind: 'log_denied' }, runtime: 'off', permanent: null }, ['log_denied'])] });
  await waitFor(async () => (await ex('get_pending_changes')).history.length > 0, 'the rollback');
  const [h] = (await ex('get_pending_changes')).history;
  assert.equal(h.outcome, 'rolled-back');
  assert.equal((await fw.cmd(['--get-log-denied'])).stdout.trim(), 'off');
});

test('FirewalldClient.get refuses a reply of another shape with a clear error', async () => {
  const { mod } = await startOn('none.json', { version: 1, pending: [] });
  // A real reply (a string) read as a list of strings.
  await assert.rejects(
    mod.fw.get({ iface: IFACE.main, member: 'getDefaultZone', what: 'read the default zone' }, R.strings),
    (e: unknown) => e instanceof TuxsecError && e.code === 'action-failed' && /^cannot read the default zone: firewalld replied with an unexpected value: "public"$/.test(e.message),
  );
  assert.equal(await mod.fw.get({ iface: IFACE.main, member: 'getDefaultZone' }, R.string), 'public');
});
