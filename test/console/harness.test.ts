// The console test harness itself: the browser verifies the server's certificate against the test CA
// (and refuses the server without it), and agents enroll as separate machines with their own names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPage, launchBrowser, startConsole, type ConsoleHarness } from './harness.ts';
import fs from 'node:fs';

let h: ConsoleHarness;

before(async () => {
  h = await startConsole({ admin: false });
});

after(async () => {
  await h?.stop();
});

test('console harness: chromium trusts the test CA through its NSS database and refuses the server without it', async () => {
  const page = await h.newPage();
  const res = await page.goto('/');
  assert.ok(res, 'a response');
  assert.equal(new URL(res.url()).protocol, 'https:');
  // What serves / is the console: its login form, which passes the page checks (axe, CSP, screenshot).
  await page.getByTestId('login-form').waitFor();
  await checkPage(page, 'harness', 'login');
  const { browser, home } = await launchBrowser(null);
  try {
    const p = await browser.newPage();
    await assert.rejects(p.goto(h.url), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await browser.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('console harness: agents enroll as separate machines with their own host names; a second enrollment of one machine is held pending', async () => {
  const a = await h.addAgent('web-1', { labels: { env: 'prod', role: 'web' } });
  const b = await h.addAgent('web-2');
  const mid = fs.readFileSync(`${a.env.dir}/machine-id`, 'utf8').trim();
  const c = await h.addAgent('web-1-again', { machineId: mid, start: false });
  assert.match(c.registerOutput, /pending an operator's approval/);
  const r = await h.api('GET', '/agents');
  const agents = r.body.agents as Array<{ id: string; hostname: string; status: string; machine_id: string }>;
  const byId = new Map(agents.map((x) => [x.id, x]));
  assert.equal(byId.get(a.id)?.hostname, 'web-1');
  assert.equal(byId.get(b.id)?.hostname, 'web-2');
  assert.equal(byId.get(a.id)?.machine_id, mid);
  assert.notEqual(byId.get(b.id)?.machine_id, mid);
  assert.equal(byId.get(c.id)?.status, 'pending');
  assert.deepEqual((byId.get(a.id) as unknown as { labels: Record<string, string> }).labels, { env: 'prod', role: 'web' }, 'the token\'s labels');
  // The agents run and answer jobs (their check-in reports the namespace's host name).
  const job = await h.server.op.submitJob({ agent_id: b.id, module: 'systeminfo', action: 'get_hostname' });
  const done = await h.server.waitJob(job.id, 30_000);
  assert.equal(done.status, 'completed', JSON.stringify(done.result));
});
