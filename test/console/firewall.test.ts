// Firewall changes from the console against a real firewalld (in a network namespace) through real
// agents and rootd: preview, apply with a confirm countdown, confirm (the change stays) or not (the
// host rolls back by itself and the page says so), and a template applied to two agents with
// per-host preview and results; a host whose firewall changed outside TuxSec listed as drifted on the
// dashboard, where an operator accepts its firewall as the baseline (a viewer cannot).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BatchView, DriftedHost, FirewallView } from '../../src/protocol/operator-api.ts';
import { ADMIN, checkPage, pageApi, startConsole, until, type ConsoleAgent, type ConsoleHarness } from './harness.ts';
import * as ui from './pages.ts';

let h: ConsoleHarness;
let fw1: ConsoleAgent;
let fw2: ConsoleAgent;

async function services(zone = 'public'): Promise<string[]> {
  const r = await h.fw!.cmd([`--zone=${zone}`, '--list-services']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(/\s+/).filter(Boolean);
}

async function ports(zone = 'public'): Promise<string[]> {
  const r = await h.fw!.cmd([`--zone=${zone}`, '--list-ports']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(/\s+/).filter(Boolean);
}

before(async () => {
  h = await startConsole({ firewalld: true });
  fw1 = await h.addAgent('fw-1', { labels: { role: 'edge' } });
  // Its own rootd (own change guard and pending-change file), as a second host would have; both reach
  // the one firewalld a machine can run.
  fw2 = await h.addAgent('fw-2', { labels: { role: 'edge' }, rootd: await h.addRootd() });
});

after(async () => {
  await h?.stop();
});

test('console firewall: a service added with a preview, applied with a countdown and confirmed stays after the deadline', async () => {
  assert.equal((await services()).includes('http'), false);
  const page = await h.loginPage(ADMIN);
  await ui.openFirewall(page, fw1.id);
  await checkPage(page, 'firewall', 'zones');
  // 30 s: the confirm click comes after an accessibility check and a firewall-cmd run, seconds
  // each on a loaded machine (CI once missed an 8 s deadline: the page had rolled back, no confirm button).
  const change = await ui.addService(page, { zone: 'public', service: 'http', confirmTimeout: 30 });
  // The preview said what would change, before anything did.
  assert.match(change.preview, /http/);
  await checkPage(page, 'firewall', 'confirm-countdown');
  await until('http in the runtime zone', async () => (await services()).includes('http'), 20_000);
  await ui.confirm(page);
  await ui.confirmed(page).waitFor({ timeout: 20_000 });
  // Past the deadline: still there, and nothing pending on the host.
  await new Promise((r) => setTimeout(r, Math.max(0, change.confirmBy - Date.now()) + 3000));
  assert.ok((await services()).includes('http'), 'http stays after the confirm deadline');
  const pending = await h.server.waitJob((await h.server.op.submitJob({ agent_id: fw1.id, module: 'firewalld', action: 'get_pending_changes' })).id, 30_000);
  assert.equal(pending.status, 'completed');
  assert.deepEqual((pending.result?.output as { pending: unknown[] }).pending, [], 'no change waits for a confirm');
  await (await ui.serviceInZone(page, 'public', 'http')).waitFor();
  await checkPage(page, 'firewall', 'confirmed');
});

test('console firewall: a service applied and not confirmed is rolled back by the host, and the page says so', async () => {
  assert.equal((await services()).includes('https'), false);
  const page = await h.loginPage(ADMIN);
  await ui.openFirewall(page, fw1.id);
  const change = await ui.addService(page, { zone: 'public', service: 'https', confirmTimeout: 5 });
  assert.match(change.preview, /https/);
  // Really applied on the host first...
  await until('https in the runtime zone', async () => (await services()).includes('https'), 20_000);
  // ...then nobody confirms: the host takes it back by itself.
  await ui.rolledBack(page).waitFor({ timeout: 40_000 });
  await checkPage(page, 'firewall', 'rolled-back');
  await until('https gone from the runtime zone', async () => !(await services()).includes('https'), 20_000);
  const perm = await h.fw!.cmd(['--permanent', '--zone=public', '--list-services']);
  assert.doesNotMatch(perm.stdout, /\bhttps\b/, 'not in the permanent configuration either');
});

test('console templates: a template applied to two agents shows a per-host preview, then per-host results', async () => {
  const page = await h.loginPage(ADMIN);
  const templateId = await ui.createTemplate(page, { name: 'edge-web', zone: 'public', services: ['imaps'], ports: ['8443/tcp'] });
  await page.getByRole('heading', { level: 1, name: 'Template edge-web', exact: true }).waitFor();
  await checkPage(page, 'templates', 'template');
  const preview = await ui.previewTemplate(page, templateId, { agents: ['fw-1', 'fw-2'] });
  for (const host of ['fw-1', 'fw-2']) assert.match(preview[host] ?? '', /imaps|8443/, `${host}'s preview names the change`);
  // A preview changes nothing.
  assert.equal((await ports()).includes('8443/tcp'), false);
  await checkPage(page, 'templates', 'preview');
  await ui.applyTemplate(page);
  await ui.hostState(page, 'fw-1', 'completed').waitFor({ timeout: 60_000 });
  await ui.hostState(page, 'fw-2', 'completed').waitFor({ timeout: 60_000 });
  await checkPage(page, 'templates', 'applied');
  // Both agents drive the one firewalld of this machine: the first to run changes it, the other finds it done.
  await ui.confirmTemplate(page);
  await checkPage(page, 'templates', 'confirmed');
  assert.ok((await ports()).includes('8443/tcp'));
  assert.ok((await services()).includes('imaps'));
  // The apply is one batch with one completed, not dry-run, job per host.
  const list = (await h.api('GET', '/batches')).body.batches as Array<{ id: string }>;
  type Full = { hosts: Array<{ agent_id: string; job: { status: string; params: { dry_run?: boolean } } }> };
  const full = await Promise.all(list.map(async (b) => (await h.api('GET', `/batches/${b.id}`)).body.batch as Full));
  const applied = full.find(
    (b) => b.hosts.length === 2 && b.hosts.every((x) => x.job.status === 'completed' && x.job.params.dry_run !== true) && [fw1.id, fw2.id].every((id) => b.hosts.some((x) => x.agent_id === id)),
  );
  assert.ok(applied, 'one batch, one completed job per host');
});

test('console dashboard: an operator accepts a drifted host\'s firewall as its baseline and it leaves the drift list; a viewer has no button', async () => {
  const operator = await h.addUser('olga', 'operator');
  const viewer = await h.addUser('vera', 'viewer');
  const check = async (): Promise<void> => {
    const r = await h.api('POST', '/firewall/check', { target: { agents: [fw1.id] } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    for (const x of (r.body.batch as BatchView).hosts) assert.equal((await h.server.waitJob(x.job.id, 30_000)).status, 'completed');
  };
  const drifted = async (): Promise<string[]> => ((await h.api('GET', '/firewall/drift')).body.drifted as DriftedHost[]).map((d) => d.agent_id);
  await check();
  // fw-1 and fw-2 share this machine's one firewalld: when the template above was applied through
  // fw-2 first, fw-1 found it done (no change of its own) and rightly sees the result as drift. Start
  // from fw-1's accepted state (test/agent/templates covers baselines following TuxSec's changes).
  const accepted = await h.api('POST', `/agents/${fw1.id}/firewall/baseline`, {});
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  assert.deepEqual(await drifted(), [], 'no drift once the current state is the baseline');
  // Changed outside TuxSec: a runtime service added on the host with firewall-cmd.
  const add = await h.fw!.cmd(['--zone=public', '--add-service=ftp']);
  assert.equal(add.code, 0, add.stderr);
  try {
    await check();
    assert.deepEqual(await drifted(), [fw1.id]);

    const seen = await h.loginPage(viewer);
    await ui.openDashboard(seen);
    await ui.driftedRow(seen, 'fw-1').waitFor();
    assert.equal(await seen.getByTestId('accept-baseline').count(), 0, 'a viewer has no accept button');
    await checkPage(seen, 'dashboard', 'drift-viewer');
    const refused = await pageApi(seen, 'POST', `/agents/${fw1.id}/firewall/baseline`, {});
    assert.equal(refused.status, 403, JSON.stringify(refused.body));

    const page = await h.loginPage(operator);
    await ui.openDashboard(page);
    await ui.driftedRow(page, 'fw-1').waitFor();
    // A change without the session's CSRF token is refused like every other.
    const noCsrf = await pageApi(page, 'POST', `/agents/${fw1.id}/firewall/baseline`, {}, false);
    assert.equal(noCsrf.status, 403, JSON.stringify(noCsrf.body));
    assert.deepEqual(await drifted(), [fw1.id], 'nothing accepted by the refused calls');
    await checkPage(page, 'dashboard', 'drift-operator');
    await ui.acceptBaseline(page, 'fw-1');
    await page.getByTestId('baseline-accepted').waitFor();
    await ui.driftedRow(page, 'fw-1').waitFor({ state: 'detached' });
    await checkPage(page, 'dashboard', 'drift-accepted');
    assert.deepEqual(await drifted(), []);
    const fw = (await h.api('GET', `/agents/${fw1.id}/firewall`)).body.firewall as FirewallView;
    assert.deepEqual([fw.baseline, fw.drifted], [fw.current, false]);
    const audit = (await h.api('GET', '/audit?action=firewall.baseline')).body.entries as Array<{ actor: string; agents: string[]; result: string }>;
    // The test's own setup acceptance above, and olga's; nothing from the refused calls.
    assert.deepEqual(audit.map((e) => [e.actor, e.agents, e.result]).sort(), [['admin-token', [fw1.id], 'ok'], ['olga', [fw1.id], 'ok']]);
  } finally {
    await h.fw!.cmd(['--zone=public', '--remove-service=ftp']);
  }
});
