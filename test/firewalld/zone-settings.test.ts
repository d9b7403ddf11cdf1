// firewalld apply_zone_settings in-process through ModuleRegistry against a real firewalld in a
// network namespace: a template of several zones in one call, dry_run per item, one change id and
// one rollback for all of it, all or nothing when a step fails, and the limits of its parameters.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FirewalldModule } from '../../src/rootd/modules/firewalld/index.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import type { ActionContext, Logger } from '../../src/sdk/action.ts';
import { ErrorCodes, TuxsecError } from '../../src/protocol/errors.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { failure } from '../helpers/failure.ts';

const log: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const ctx = (): ActionContext => ({ peer: { uid: 0, gid: 0, pid: process.pid }, signal: new AbortController().signal, log, requestId: 't', progress: () => {} });

let fw: FirewalldNetns;
let mod: FirewalldModule;
let reg: ModuleRegistry;
let stateDir: string;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ex = (action: string, params: Record<string, unknown> = {}): Promise<any> => reg.execute('firewalld', action, params, ctx());
const code = async (p: Promise<unknown>): Promise<string> => (await failure(p)).code;
const cmd = async (...args: string[]): Promise<string> => (await fw.cmd(args)).stdout.trim();
const yes = async (...args: string[]): Promise<boolean> => {
  const out = await cmd(...args);
  assert.ok(out === 'yes' || out === 'no', `firewall-cmd ${args.join(' ')} said ${JSON.stringify(out)}`);
  return out === 'yes';
};

before(async () => {
  fw = await startFirewalldNetns();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwstate-'));
  mod = new FirewalldModule();
  reg = new ModuleRegistry(log, { check() {} });
  reg.register(mod, { enabled: true, allow_dangerous: false, settings: { pending_file: path.join(stateDir, 'p.json') } });
  await reg.initializeAll((_n, settings) => ({ settings, log }));
});

after(async () => {
  await mod?.shutdown();
  await fw?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('firewalld apply_zone_settings (a template in one call)', () => {
  const RULE = 'rule family="ipv4" source address="192.0.2.0/24" port port="7103" protocol="tcp" accept';
  const TEMPLATE = {
    work: { services: ['imaps', 'pop3s'], ports: ['7101/tcp'] },
    dmz: { ports: ['7102/udp'], rich_rules: [RULE] },
  };
  /** What the two zones hold, runtime and permanent, as firewall-cmd prints it. */
  const zones = async () => `${await cmd('--zone=work', '--list-all')}\n${await cmd('--zone=dmz', '--list-all')}\n${await cmd('--permanent', '--zone=work', '--list-all')}\n${await cmd('--permanent', '--zone=dmz', '--list-all')}`;
  const present = async () => [
    await yes('--zone=work', '--query-service=imaps'),
    await yes('--zone=work', '--query-service=pop3s'),
    await yes('--zone=work', '--query-port=7101/tcp'),
    await yes('--zone=dmz', '--query-port=7102/udp'),
    await yes('--zone=dmz', `--query-rich-rule=${RULE}`),
  ];

  test('dry_run reports each item and changes nothing', async () => {
    await cmd('--zone=work', '--add-service=imaps');
    const before = await zones();
    const r = await ex('apply_zone_settings', { zones: TEMPLATE, dry_run: true });
    assert.equal(r.dry_run, true);
    assert.equal(r.changed, true);
    assert.equal(r.change_id, undefined);
    assert.deepEqual(
      r.items.map((i: { zone: string; kind: string; value: string; changed: boolean }) => `${i.zone} ${i.kind} ${i.value} ${i.changed}`),
      ['work service imaps false', 'work service pop3s true', 'work port 7101/tcp true', 'dmz port 7102/udp true', `dmz rich_rule ${RULE} true`],
    );
    assert.equal(await zones(), before, 'firewalld unchanged by dry_run');
  });

  test('apply with confirm_timeout is one change id, and everything rolls back when it is not confirmed', async () => {
    // Long enough for the checks below on a loaded machine (each firewall-cmd is a Python start).
    const r = await ex('apply_zone_settings', { zones: TEMPLATE, confirm_timeout: 20 });
    assert.equal(r.changed, true);
    assert.match(r.change_id, /^[0-9a-f]{16}$/);
    const pending = (await ex('get_pending_changes')).pending.filter((p: { change_id: string }) => p.change_id === r.change_id);
    assert.equal(pending.length, 1);
    // Both zones are held by the one change: a single write to either waits for it.
    assert.equal(await code(ex('add_port', { zone: 'dmz', port: '7199/tcp' })), 'conflict');
    assert.deepEqual(await present(), [true, true, true, true, true]);
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(r.confirm_by) - Date.now()) + 1000));
    const history = async () => (await ex('get_pending_changes')).history.find((x: { change_id: string }) => x.change_id === r.change_id);
    for (let i = 0; i < 100 && !(await history()); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal((await history()).outcome, 'rolled-back');
    // imaps was there before the change, so it stays.
    assert.deepEqual(await present(), [true, false, false, false, false]);
  });

  test('apply with confirm_timeout then confirm keeps everything; applying again changes nothing', async () => {
    const r = await ex('apply_zone_settings', { zones: TEMPLATE, confirm_timeout: 5 });
    assert.equal((await ex('confirm', { change_id: r.change_id })).outcome, 'confirmed');
    await new Promise((res) => setTimeout(res, 6000));
    assert.deepEqual(await present(), [true, true, true, true, true]);
    const again = await ex('apply_zone_settings', { zones: TEMPLATE });
    assert.equal(again.changed, false);
    assert.ok(again.items.every((i: { changed: boolean }) => !i.changed));
    for (const [z, el] of [['work', '--remove-service=imaps'], ['work', '--remove-service=pop3s'], ['work', '--remove-port=7101/tcp'], ['dmz', '--remove-port=7102/udp'], ['dmz', `--remove-rich-rule=${RULE}`]]) {
      await cmd(`--zone=${z}`, el!);
    }
  });

  test('permanent: true changes the permanent configuration only', async () => {
    const r = await ex('apply_zone_settings', { zones: { work: { ports: ['7104/tcp'] } }, permanent: true });
    assert.equal(r.permanent, true);
    assert.equal(await yes('--permanent', '--zone=work', '--query-port=7104/tcp'), true);
    assert.equal(await yes('--zone=work', '--query-port=7104/tcp'), false);
    await cmd('--permanent', '--zone=work', '--remove-port=7104/tcp');
  });

  test('an atomic write that fails half-way puts back what it had changed (all or nothing)', async () => {
    const before = await zones();
    // firewalld itself accepts every step apply_zone_settings checked, so the failure is made here:
    // a real change, then an error, through the same guard.
    const e = await failure(
      mod.guard.run(
        {
          what: 'test write',
          scopes: [{ kind: 'zone', name: 'dmz' }, { kind: 'zone', name: 'work' }],
          atomic: true,
          check: async () => true,
          apply: async () => {
            await cmd('--zone=dmz', '--add-port=7105/tcp');
            await cmd('--permanent', '--zone=work', '--add-service=imaps');
            throw new TuxsecError(ErrorCodes.actionFailed, 'step 3 failed');
          },
        },
        {},
      ),
    );
    assert.match(e.message, /step 3 failed \(nothing was changed/);
    assert.equal(await zones(), before, 'both zones are back as they were');
  });

  test('bad templates are refused naming what is wrong, before anything changes', async () => {
    const before = await zones();
    const cases: Array<[unknown, RegExp]> = [
      [{ nosuchzone: { services: ['http'] } }, /"nosuchzone".*no such zone/],
      [{ work: { services: ['htp'] } }, /"htp".*unknown service/],
      [{ work: { services: ['http; reboot'] } }, /"zones"/],
      [{ 'work --panic-on': { services: ['http'] } }, /at zones."work --panic-on": unexpected property/],
      [{ work: { services: ['http; reboot'] } }, /at zones.work.services.0/],
      [{ work: { ports: ['99999/tcp'] } }, /port must be between 1 and 65535/],
      [{ work: { rich_rules: ['rule family="ipv4" $(reboot) accept'] } }, /rich rule/],
      [{ work: { services: ['http'], forward_ports: ['1/tcp'] } }, /"zones"/],
      [{}, /"zones"/],
      [Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`z${i}`, {}])), /"zones"/],
      [{ work: { ports: Array.from({ length: 129 }, (_, i) => `${1000 + i}/tcp`) } }, /"zones"/],
    ];
    for (const [z, re] of cases) {
      const e = await failure(ex('apply_zone_settings', { zones: z }));
      assert.equal(e.code, 'invalid-params', e.message);
      assert.match(e.message, re);
    }
    assert.equal(await zones(), before);
  });

  test('a template of 512 items (the limit) applies and rolls back well within the request timeout', async (t) => {
    const big: Record<string, { ports: string[] }> = {};
    ['work', 'dmz', 'home', 'external'].forEach((z, i) => (big[z] = { ports: Array.from({ length: 128 }, (_, j) => `${20000 + i * 128 + j}/tcp`) }));
    const before = await zones();
    let t0 = performance.now();
    const dry = await ex('apply_zone_settings', { zones: big, dry_run: true });
    const dryMs = performance.now() - t0;
    assert.equal(dry.items.filter((i: { changed: boolean }) => i.changed).length, 512);
    t0 = performance.now();
    const r = await ex('apply_zone_settings', { zones: big, confirm_timeout: 60 });
    const applyMs = performance.now() - t0;
    assert.equal(await yes('--zone=external', '--query-port=20511/tcp'), true);
    t0 = performance.now();
    assert.equal((await ex('rollback', { change_id: r.change_id })).outcome, 'rolled-back');
    const rollbackMs = performance.now() - t0;
    assert.equal(await zones(), before);
    t.diagnostic(`512 ports in 4 zones: dry run ${dryMs.toFixed(0)} ms, apply with confirm_timeout ${applyMs.toFixed(0)} ms, rollback ${rollbackMs.toFixed(0)} ms`);
    // rootd's default request_timeout is 60 s.
    assert.ok(applyMs < 30_000 && rollbackMs < 30_000, `apply ${applyMs} ms, rollback ${rollbackMs} ms`);
  });
});
