// Fleet work in the console, in a real browser against real agents: approving a pending agent, a job
// for a label with one host offline (its job waits, then runs when it returns, shown live), retry of
// the failed hosts only, and the audit export of all of it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pluginDir, writeLongRunningPlugin, writePlugin } from '../helpers/plugin.ts';
import { ADMIN, checkPage, startConsole, until, type ConsoleAgent, type ConsoleHarness } from './harness.ts';
import * as ui from './pages.ts';

let h: ConsoleHarness;
const dirs: string[] = [];

/**
 * A plugin whose `probe` action fails while `marker` exists: hosts whose rootd has its marker fail,
 * the others complete; removing the marker makes a retry succeed.
 */
function probePlugin(marker: string): string {
  const dir = pluginDir('tsc-probe-');
  dirs.push(dir);
  writePlugin(dir, {
    name: 'probe',
    description: 'fails while a marker file exists',
    prelude: `import { existsSync } from 'node:fs';`,
    actions: `[
      defineAction({ name: 'check', description: 'fails while the marker exists', access: 'read', params: Params({}),
        handler: async () => {
          if (existsSync(${JSON.stringify(marker)})) throw new Error('probe marker present');
          return { ok: true };
        } }),
    ]`,
  });
  return dir;
}

/** RFC 4180 rows: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

before(async () => {
  // A reader may fall behind by 64 KiB (default 1 MiB): changes of more than 16 KiB of events at
  // once come as one `batch` event, which the batch-event test below needs.
  h = await startConsole({ config: { events_buffer_bytes: 65_536 } });
});

after(async () => {
  await h?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

test('console agents: an admin approves a pending agent, which then runs jobs', async () => {
  const first = await h.addAgent('twin');
  const mid = fs.readFileSync(path.join(first.env.dir, 'machine-id'), 'utf8').trim();
  // The same machine enrolling again is held for an operator; its agent waits for approval.
  const twin = await h.addAgent('twin-again', { machineId: mid });
  assert.equal((await h.agent(twin.id))?.status, 'pending');
  const page = await h.loginPage(ADMIN);
  await ui.openAgents(page, { state: 'pending' });
  await ui.agentRow(page, 'twin-again').waitFor();
  await checkPage(page, 'fleet', 'agents-pending');
  await ui.approve(page, 'twin-again');
  await until('the agent approved', async () => (await h.agent(twin.id))?.status === 'active', 15_000);
  // The pending list drops it without a reload, and the full list shows it approved.
  await ui.agentRow(page, 'twin-again').waitFor({ state: 'detached' });
  await ui.openAgents(page);
  await ui.agentRow(page, 'twin-again').filter({ hasNotText: /pending/i }).waitFor();
  const job = await h.server.op.submitJob({ agent_id: twin.id, module: 'systeminfo', action: 'get_hostname' });
  assert.equal((await h.server.waitJob(job.id, 40_000)).status, 'completed');
});

test('console jobs: a job for a label with one host offline waits queued for it, and runs when it returns', async () => {
  const on = await h.addAgent('app-1', { labels: { tier: 'app' } });
  const off = await h.addAgent('app-2', { labels: { tier: 'app' } });
  await h.addAgent('other-1', { labels: { tier: 'db' } });
  // Both have checked in once; then app-2 goes away.
  await until('both agents seen', async () => (await h.agent(on.id))?.state === 'online' && (await h.agent(off.id))?.state === 'online', 30_000);
  await off.stop();
  const page = await h.loginPage(ADMIN);
  const batchId = await ui.submitBatch(page, { label: 'tier=app', module: 'systeminfo', action: 'get_hostname' });
  await ui.hostState(page, 'app-1', 'completed').waitFor({ timeout: 40_000 });
  await ui.hostState(page, 'app-2', 'queued').waitFor();
  assert.equal(await ui.hostRow(page, 'other-1').count(), 0, 'a host without the label gets no job');
  await checkPage(page, 'fleet', 'batch-one-offline');
  // Still queued a while later: it waits for its host, not for a timer.
  const b = (await h.api('GET', `/batches/${batchId}`)).body.batch as { hosts: Array<{ agent_id: string; job: { status: string } }> };
  assert.equal(b.hosts.find((x) => x.agent_id === off.id)?.job.status, 'queued');
  // Shown live, without reloading, however the page's own reads and the events interleave.
  await ui.slowReads(page, `/batches/${encodeURIComponent(batchId)}`, 500);
  off.start();
  await ui.hostState(page, 'app-2', 'completed').waitFor({ timeout: 60_000 });
  await checkPage(page, 'fleet', 'batch-host-returned');
  const after = (await h.api('GET', `/batches/${batchId}`)).body.batch as { hosts: Array<{ agent_id: string; job: { status: string; result: { data?: unknown } } }> };
  assert.deepEqual(after.hosts.map((x) => x.job.status).sort(), ['completed', 'completed']);
});

test('console jobs: many of a batch\'s jobs changing at once come as one batch event, and the batch page shows them', async () => {
  // Two hosts that never call in: their jobs stay queued until the admin cancels them, together.
  const one = await h.addAgent('bulk-1', { start: false });
  const two = await h.addAgent('bulk-2', { start: false });
  // Offline first: no agent event (online -> stale -> offline) may reload the page instead.
  await until('both registered agents offline', async () => (await h.agent(one.id))?.state === 'offline' && (await h.agent(two.id))?.state === 'offline', 40_000);
  const big = 'b'.repeat(10_000);
  const made = await h.api('POST', '/batches', { target: { agents: [one.id, two.id] }, module: 'systeminfo', action: 'get_hostname', params: { big } });
  assert.equal(made.status, 201, JSON.stringify(made.body).slice(0, 300));
  const batchId = (made.body.batch as { id: string }).id;
  const page = await h.loginPage(ADMIN);
  await page.goto(`/batches/${encodeURIComponent(batchId)}`);
  await ui.hostState(page, 'bulk-1', 'queued').waitFor();
  await ui.hostState(page, 'bulk-2', 'queued').waitFor();
  await ui.liveUpdates(page);
  // Past the server's next look at agents' states (every 5 s while a stream is open), which is when
  // it tells the offline change, and past the page's own read when its stream opened.
  await new Promise((r) => setTimeout(r, 6_000));
  // Two 10 kB job events in one turn are more than a quarter of a reader's 64 KiB: one batch event.
  const cancelled = await h.api('POST', `/batches/${encodeURIComponent(batchId)}/cancel`);
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body).slice(0, 300));
  await ui.hostState(page, 'bulk-1', 'cancelled').waitFor({ timeout: 15_000 });
  await ui.hostState(page, 'bulk-2', 'cancelled').waitFor({ timeout: 15_000 });
  await page.context().close();
});

test('console jobs: when reading a batch takes longer than a second and events keep coming, each answer is still shown', async () => {
  // A 30 s operation reporting progress every 0.2 s, which its agent tells the server every second.
  const dir = pluginDir('tsc-long-');
  dirs.push(dir);
  writeLongRunningPlugin(dir);
  const rootd = await h.addRootd({ config: { plugins_dir: dir } });
  const host = await h.addAgent('flow-1', { rootd, start: false, config: { progress_interval: 1 } });
  const made = await h.api('POST', '/batches', { target: { agents: [host.id] }, module: 'longmod', action: 'count', params: { steps: 150, ms: 200 } });
  assert.equal(made.status, 201, JSON.stringify(made.body).slice(0, 300));
  const batchId = (made.body.batch as { id: string }).id;
  const page = await h.loginPage(ADMIN);
  await page.goto(`/batches/${encodeURIComponent(batchId)}`);
  await ui.hostState(page, 'flow-1', 'queued').waitFor();
  await ui.liveUpdates(page);
  // Each read of the batch reaches the page 3 s after the server answered it: events come faster.
  await ui.slowReads(page, `/batches/${encodeURIComponent(batchId)}`, 3_000);
  host.start();
  // Shown running while it runs (the page used to drop every answer for the next read's until the events stopped).
  await ui.hostState(page, 'flow-1', 'running').waitFor({ timeout: 30_000 });
  const job = ((await h.api('GET', `/batches/${encodeURIComponent(batchId)}`)).body.batch as { hosts: Array<{ job: { status: string } }> }).hosts[0]!.job;
  assert.equal(job.status, 'running', 'the page showed running while the operation still ran');
  await ui.hostState(page, 'flow-1', 'completed').waitFor({ timeout: 40_000 });
  await page.context().close();
});

let retried: { batchId: string; ok: ConsoleAgent; bad: ConsoleAgent } | null = null;

test('console jobs: "retry failed" queues new jobs only for the hosts that failed', async () => {
  const okDir = probePlugin(path.join(h.dir, 'no-such-marker'));
  const marker = path.join(h.dir, 'probe-fails');
  fs.writeFileSync(marker, '');
  const badDir = probePlugin(marker);
  const okRootd = await h.addRootd({ config: { plugins_dir: okDir } });
  const badRootd = await h.addRootd({ config: { plugins_dir: badDir } });
  const ok = await h.addAgent('probe-ok', { labels: { probe: 'yes' }, rootd: okRootd });
  const bad = await h.addAgent('probe-bad', { labels: { probe: 'yes' }, rootd: badRootd });
  const page = await h.loginPage(ADMIN);
  const batchId = await ui.submitBatch(page, { label: 'probe=yes', module: 'probe', action: 'check' });
  await ui.hostState(page, 'probe-ok', 'completed').waitFor({ timeout: 40_000 });
  await ui.hostState(page, 'probe-bad', 'failed').waitFor({ timeout: 40_000 });
  await checkPage(page, 'fleet', 'batch-one-failed');
  const before = (await h.api('GET', `/batches/${batchId}`)).body.batch as { hosts: Array<{ agent_id: string; job: { id: string } }> };
  const okJob = before.hosts.find((x) => x.agent_id === ok.id)!.job.id;
  const badJob = before.hosts.find((x) => x.agent_id === bad.id)!.job.id;
  fs.rmSync(marker);
  // The retried job's events come while the page is reading the batch again.
  await ui.slowReads(page, `/batches/${encodeURIComponent(batchId)}`, 500);
  await ui.retryFailed(page);
  await ui.hostState(page, 'probe-bad', 'completed').waitFor({ timeout: 40_000 });
  await checkPage(page, 'fleet', 'batch-retried');
  const after = (await h.api('GET', `/batches/${batchId}`)).body.batch as { hosts: Array<{ agent_id: string; job: { id: string; status: string } }> };
  assert.equal(after.hosts.find((x) => x.agent_id === ok.id)!.job.id, okJob, 'the completed host got no new job');
  const newBad = after.hosts.find((x) => x.agent_id === bad.id)!.job;
  assert.notEqual(newBad.id, badJob, 'the failed host got a new job');
  assert.equal(newBad.status, 'completed');
  // (The job form also ran systeminfo get_module_info on one of them to list the module's actions.)
  const probeJobs = async (id: string): Promise<number> => ((await h.api('GET', `/jobs?agent_id=${id}`)).body.jobs as Array<{ module: string }>).filter((j) => j.module === 'probe').length;
  assert.deepEqual([await probeJobs(ok.id), await probeJobs(bad.id)], [1, 2]);
  retried = { batchId, ok, bad };
});

test('console audit: the export (CSV and JSON lines) names who did what to which hosts, with secrets left out', async () => {
  // A change carrying a secret: a user created with a password given by the admin.
  const secret = 'audit-secret-password-0123456789';
  await h.addUser('paula', 'operator', { password: secret });
  const page = await h.loginPage(ADMIN);
  await ui.openAudit(page);
  await checkPage(page, 'fleet', 'audit');
  const jsonl = await ui.exportAudit(page, 'jsonl');
  const csv = await ui.exportAudit(page, 'csv');
  assert.doesNotMatch(jsonl, new RegExp(secret), 'no password in the JSON lines export');
  assert.doesNotMatch(csv, new RegExp(secret), 'no password in the CSV export');
  const entries = jsonl.trim().split('\n').map((l) => JSON.parse(l) as { actor: string; action: string; agents: string[]; params: unknown; result: string; at: string });
  for (const e of entries) for (const k of ['at', 'actor', 'action', 'agents', 'params', 'result']) assert.ok(k in e, `entry has ${k}: ${JSON.stringify(e)}`);
  const twin = h.agents.find((a) => a.hostname === 'twin-again')!;
  const approve = entries.find((e) => /approve/.test(e.action) && e.agents.includes(twin.id));
  assert.ok(approve, `an approve entry for ${twin.id} among ${entries.map((e) => e.action).join(', ')}`);
  assert.equal(approve.actor, ADMIN.name);
  assert.equal(approve.result, 'ok');
  assert.ok(retried, 'the retry test ran');
  const retry = entries.find((e) => /retry/.test(e.action) && e.agents.includes(retried!.bad.id));
  assert.ok(retry, 'a retry entry naming the failed host');
  assert.equal(retry.agents.includes(retried.ok.id), false, 'the retry names only the host it retried');
  const batch = entries.find((e) => /batch/.test(e.action) && e.agents.includes(retried!.ok.id) && e.agents.includes(retried!.bad.id));
  assert.ok(batch, 'the batch entry names both hosts');
  const user = entries.find((e) => /user/.test(e.action) && JSON.stringify(e.params).includes('paula'));
  assert.ok(user, 'the user creation is audited');
  // CSV: a header and one row per entry, the same entries.
  const [header, ...rows] = parseCsv(csv);
  for (const k of ['at', 'actor', 'action', 'agents', 'params', 'result']) assert.ok(header!.includes(k), `CSV column ${k} in ${header!.join(',')}`);
  assert.equal(rows.length, entries.length, 'one CSV row per entry');
  const col = (r: string[], k: string): string => r[header!.indexOf(k)]!;
  const row = rows.find((r) => col(r, 'agents').includes(twin.id) && /approve/.test(col(r, 'action')));
  assert.ok(row, 'the approve row in the CSV');
  assert.equal(col(row, 'actor'), ADMIN.name);
});
