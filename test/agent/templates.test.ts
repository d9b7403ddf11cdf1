// Firewall templates end to end: the real tuxsec-server over TLS, two real pull agents (as the tuxsec
// user, labelled role=web), each with its own real tuxsec-rootd, and a real firewalld in a network
// namespace that both rootds manage (one firewalld per machine: the two hosts share it). A template
// is previewed and applied on both with per-host results, applied with confirm_timeout and rolled
// back or confirmed through the server, and an out-of-band change is seen as drift.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import type { BatchView, JobView } from '../../src/protocol/operator-api.ts';
import { certsIn, createToken, makeAgentEnv, registerAgent, startAgent, startServer, tempDir, until, type AgentEnv, type Proc, type ServerHandle } from './harness.ts';

const RULE = 'rule family="ipv4" source address="198.51.100.0/24" port port="7203" protocol="tcp" accept';
const WEB = { work: { services: ['imaps'], ports: ['7201/tcp'] }, dmz: { rich_rules: [RULE] } };

let dir: string;
let fw: FirewalldNetns;
let server: ServerHandle;
const rootds: RootdHandle[] = [];
const envs: AgentEnv[] = [];
const procs: Proc[] = [];
const ids: string[] = [];

type Item = { zone: string; kind: string; value: string; changed: boolean };
type Output = { changed: boolean; dry_run?: boolean; change_id?: string; items: Item[] };

const yes = async (...args: string[]) => (await fw.cmd(args)).stdout.trim() === 'yes';
const present = async () => [await yes('--zone=work', '--query-service=imaps'), await yes('--zone=work', '--query-port=7201/tcp'), await yes('--zone=dmz', `--query-rich-rule=${RULE}`)];

/** Waits for every host's job of a batch; fails with the agents' output when one did not complete. */
async function results(batch: BatchView): Promise<Map<string, JobView>> {
  const out = new Map<string, JobView>();
  for (const j of (batch.hosts ?? []).map((h) => ({ agent_id: h.agent_id, job_id: h.job.id }))) {
    const v = await server.waitJob(j.job_id, 60_000);
    assert.equal(v.status, 'completed', `${j.agent_id}: ${JSON.stringify(v.result)}\n${procs.map((p) => p.out().slice(-2000)).join('\n')}`);
    out.set(j.agent_id, v);
  }
  return out;
}

before(async () => {
  dir = tempDir('tsa-tpl-');
  fw = await startFirewalldNetns();
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs, config: { sync_interval: 1 } });
  for (let i = 0; i < 2; i++) {
    const state = path.join(dir, `fwstate${i}`);
    fs.mkdirSync(state);
    const rootd = await startRootd({ config: { modules: { firewalld: { settings: { pending_file: path.join(state, 'pending.json') } } } } });
    rootds.push(rootd);
    const env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: rootd.socketPath });
    envs.push(env);
    const r = await registerAgent(env, server.url, await createToken(server));
    // The second enrollment of this machine waits for an operator.
    assert.equal(r.code, i === 0 ? 0 : 3, r.stdout + r.stderr);
    const id = String((YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>).agent_id);
    ids.push(id);
    if (i === 1) assert.equal((await server.cli(['agents', 'approve', id])).code, 0);
    assert.equal((await server.cli(['agents', 'label', id, 'role=web'])).code, 0);
    procs.push(startAgent(env));
  }
});

after(async () => {
  for (const p of procs) await p.kill();
  await server?.stop();
  for (const r of rootds) await r.stop();
  await fw?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

test('get_module_info through the server gives an agent\'s own firewalld schemas, apply_zone_settings included', async () => {
  const job = await server.waitJob((await server.op.submitJob({ agent_id: ids[0]!, module: 'systeminfo', action: 'get_module_info', params: { module: 'firewalld' } })).id, 60_000);
  assert.equal(job.status, 'completed', JSON.stringify(job.result));
  const info = (job.result!.output as { module_info: { name: string; capabilities: Array<{ name: string; access: string }> } }).module_info;
  assert.equal(info.name, 'firewalld');
  assert.equal(info.capabilities.find((c) => c.name === 'apply_zone_settings')?.access, 'write');
});

test('a template previewed then applied on two agents by label: per-host results, the preview changes nothing', async () => {
  const tpl = await server.op.createTemplate({ name: 'web', zones: WEB });
  assert.deepEqual(await present(), [false, false, false]);
  const preview = await server.op.runTemplate(tpl.id, 'preview', { target: { label: { role: 'web' } } });
  assert.deepEqual((preview.hosts ?? []).map((h) => h.agent_id).sort(), [...ids].sort());
  assert.deepEqual([preview.module, preview.action], ['firewalld', 'apply_zone_settings']);
  for (const [, v] of await results(preview)) {
    const o = v.result!.output as Output;
    assert.equal(o.dry_run, true);
    assert.deepEqual(o.items.map((i) => `${i.zone} ${i.kind} ${i.value} ${i.changed}`), ['work service imaps true', 'work port 7201/tcp true', `dmz rich_rule ${RULE} true`]);
  }
  assert.deepEqual(await present(), [false, false, false], 'a preview changes nothing');

  const applied = await results(await server.op.runTemplate(tpl.id, 'apply', { target: { label: { role: 'web' } } }));
  assert.equal(applied.size, 2);
  assert.deepEqual(await present(), [true, true, true]);
  // The two hosts share this firewalld: each item was added by one of them, and each host says what it did.
  const outs = [...applied.values()].map((v) => v.result!.output as Output);
  for (let i = 0; i < 3; i++) assert.ok(outs.some((o) => o.items[i]!.changed), `item ${i} added by one host`);
  for (const o of outs) assert.equal(o.items.length, 3);
  for (const a of [['--zone=work', '--remove-service=imaps'], ['--zone=work', '--remove-port=7201/tcp'], ['--zone=dmz', `--remove-rich-rule=${RULE}`]]) await fw.cmd(a);
});

test('apply with confirm_timeout through the server: rolled back on the host unless confirmed, kept when confirmed', async () => {
  const tpl = (await server.op.listTemplates()).find((t) => t.name === 'web')!;
  // Long enough to look at the firewall before the deadline on a loaded machine: the result's way
  // back through the server, then three firewall-cmd runs (python), seconds each under load.
  const [first] = [...(await results(await server.op.runTemplate(tpl.id, 'apply', { target: { agents: [ids[0]!] }, confirm_timeout: 30 }))).values()];
  const o = first!.result!.output as Output;
  assert.match(o.change_id!, /^[0-9a-f]{16}$/);
  assert.deepEqual(await present(), [true, true, true]);
  await until('the host to roll the template back', async () => (await present()).every((x) => !x), 60_000, 250);

  const [second] = [...(await results(await server.op.runTemplate(tpl.id, 'apply', { target: { agents: [ids[0]!] }, confirm_timeout: 20 }))).values()];
  const { change_id: change, confirm_by: by } = second!.result!.output as Output & { confirm_by: string };
  const confirm = await server.waitJob((await server.op.submitJob({ agent_id: ids[0]!, module: 'firewalld', action: 'confirm', params: { change_id: change } })).id, 60_000);
  assert.equal(confirm.status, 'completed', JSON.stringify(confirm.result));
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(by) - Date.now()) + 1500));
  assert.deepEqual(await present(), [true, true, true], 'kept after the deadline');
});

test('drift: a change made outside TuxSec shows until an operator accepts it as the baseline', async () => {
  const check = async () => results(await server.op.checkFirewalls({ target: { label: { role: 'web' } } }));
  await check();
  // Writes through the server were followed by this hash: it is the baseline, nothing drifted.
  assert.deepEqual(await server.op.driftedFirewalls(), []);
  await fw.cmd(['--zone=work', '--add-port=7299/udp']);
  await check();
  const drifted = await server.op.driftedFirewalls();
  assert.deepEqual(drifted.map((d) => d.agent_id).sort(), [...ids].sort());
  assert.notEqual(drifted[0]!.baseline, drifted[0]!.current);
  const cli = await server.cli(['firewall', 'drift']);
  assert.match(JSON.stringify(cli.json), new RegExp(ids[0]!));
  assert.equal((await server.cli(['firewall', 'baseline', ids[0]!])).code, 0);
  assert.deepEqual((await server.op.driftedFirewalls()).map((d) => d.agent_id), [ids[1]]);
});
