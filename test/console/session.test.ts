// The console's sessions and roles in a real browser: login, wrong password, logout, a viewer who
// cannot change anything (no buttons, and the API refuses the viewer's own session), an operator
// limited to a label who cannot reach other hosts, and login throttling (last: it blocks the address).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/server/operator-auth.ts';
import { ADMIN, checkPage, fillLogin, pageApi, startConsole, type ConsoleAgent, type ConsoleHarness, type ConsoleUser } from './harness.ts';

let h: ConsoleHarness;
let prod: ConsoleAgent;
let staging: ConsoleAgent;
let viewer: ConsoleUser;
let limited: ConsoleUser;

before(async () => {
  h = await startConsole({
    // Three failures of one name, eight of one address, within the window: the throttling test's numbers.
    config: { login_failures_per_user: 3, login_failures_per_address: 8, login_throttle_window: 600 },
  });
  prod = await h.addAgent('prod-web', { labels: { env: 'prod' } });
  staging = await h.addAgent('staging-web', { labels: { env: 'staging' } });
  viewer = await h.addUser('vera', 'viewer');
  limited = await h.addUser('otto', 'operator', { selector: { env: 'prod' } });
});

after(async () => {
  await h?.stop();
});

/** Buttons whose names say they change something. */
const CHANGE = /^(approve|reject|apply|add|remove|delete|new|create|run|submit|confirm|save|edit|retry|cancel|revoke|preview|label|end the sessions|read from host|enable|disable|turn)/i;

async function changeButtons(page: Page): Promise<string[]> {
  const names = await page.getByRole('button').evaluateAll((els) => els.map((e) => (e.getAttribute('aria-label') ?? e.textContent ?? '').trim()));
  return names.filter((n) => CHANGE.test(n));
}

test('console login: the form logs in, shows who is logged in, and sets an HttpOnly, Secure, SameSite=Strict session cookie', async () => {
  const page = await h.newPage();
  await page.goto('/');
  await page.getByTestId('login-form').waitFor();
  await checkPage(page, 'session', 'login');
  await fillLogin(page, ADMIN);
  await page.getByTestId('current-user').filter({ hasText: ADMIN.name }).waitFor();
  const cookies = await page.context().cookies();
  const s = cookies.find((c) => c.name === SESSION_COOKIE);
  assert.ok(s, `a ${SESSION_COOKIE} cookie among ${cookies.map((c) => c.name).join(', ')}`);
  assert.equal(s.httpOnly, true);
  assert.equal(s.secure, true);
  assert.equal(s.sameSite, 'Strict');
  assert.equal(s.name, '__Host-tuxsec_session');
  assert.equal(s.path, '/');
  assert.equal(await page.evaluate(() => document.cookie.includes('tuxsec_session')), false, 'the script cannot read the session cookie');
  const me = await pageApi(page, 'GET', '/session');
  assert.equal(me.status, 200);
  assert.deepEqual((me.body.user as { name: string; role: string }).role, 'admin');
  await checkPage(page, 'session', 'dashboard-admin');
});

test('console login: a wrong password and an unknown name get the same refusal, and no session', async () => {
  const page = await h.newPage();
  await page.goto('/');
  const carol = await h.addUser('carol', 'viewer');
  const messages: string[] = [];
  for (const who of [{ name: carol.name, password: 'not-her-password' }, { name: 'nobody-here', password: 'whatever-password' }]) {
    assert.equal(await fillLogin(page, who), 401);
    const err = page.getByTestId('login-error');
    await err.filter({ hasText: /wrong user name or password/ }).waitFor();
    messages.push((await err.textContent())!.trim());
    assert.equal(await page.getByTestId('current-user').count(), 0);
  }
  assert.equal(messages[0], messages[1], 'the same message for a wrong password and an unknown name');
  assert.equal((await page.context().cookies()).some((c) => c.name === SESSION_COOKIE), false);
  assert.equal((await pageApi(page, 'GET', '/session')).status, 401);
  await checkPage(page, 'session', 'login-wrong-password');
});

test('console logout: the session ends on the server, not only in the browser', async () => {
  const page = await h.loginPage(ADMIN);
  const cookie = (await page.context().cookies()).find((c) => c.name === SESSION_COOKIE);
  assert.ok(cookie);
  await page.getByTestId('logout').click();
  await page.getByTestId('login-form').waitFor();
  assert.equal((await pageApi(page, 'GET', '/session')).status, 401);
  // The old cookie, put back by hand into another browser, no longer opens a session.
  const other = await h.newPage();
  await other.context().addCookies([cookie]);
  await other.goto('/');
  assert.equal((await pageApi(other, 'GET', '/session')).status, 401);
  await other.getByTestId('login-form').waitFor();
});

test('console viewer: no page offers a change, and the API refuses the viewer\'s own session', async () => {
  const page = await h.loginPage(viewer);
  const seen: Record<string, string[]> = {};
  for (const [name, p] of [['dashboard', '/'], ['agents', '/agents'], ['agent', `/agents/${prod.id}`], ['agent-firewall', `/agents/${prod.id}?tab=firewall`], ['jobs', '/jobs'], ['templates', '/templates'], ['audit', '/audit']] as const) {
    await page.goto(p);
    await page.getByRole('heading', { level: 1 }).first().waitFor();
    // Wait until the page shows its data: the agent's host name on the agent pages.
    if (name.startsWith('agent')) await page.getByText('prod-web').first().waitFor();
    seen[name] = await changeButtons(page);
    await checkPage(page, 'session', `viewer-${name}`);
  }
  assert.deepEqual(seen, { dashboard: [], agents: [], agent: [], 'agent-firewall': [], jobs: [], templates: [], audit: [] });
  // With a valid CSRF token, as the console's own script would send it: refused for the role.
  const attempts: Array<[string, string, unknown]> = [
    ['POST', '/jobs', { agent_id: prod.id, module: 'systeminfo', action: 'get_hostname' }],
    ['POST', '/batches', { target: { label: { env: 'prod' } }, module: 'systeminfo', action: 'get_hostname' }],
    ['POST', `/agents/${prod.id}/labels`, { set: { env: 'dev' } }],
    ['POST', `/agents/${prod.id}/approve`, undefined],
    ['POST', '/tokens', { uses: 1 }],
    ['POST', '/users', { name: 'mallory', role: 'admin', password: 'mallory-password-0123' }],
    ['POST', '/templates', { name: 'viewer-template', zones: { public: { services: ['ssh'] } } }],
  ];
  for (const [method, p, body] of attempts) {
    const r = await pageApi(page, method, p, body);
    assert.equal(r.status, 403, `${method} ${p}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, 'permission-denied', `${method} ${p}`);
  }
  // Nothing happened: no job, the label unchanged, no user mallory.
  assert.equal(((await h.api('GET', '/jobs')).body.jobs as unknown[]).length, 0);
  assert.deepEqual((await h.agent(prod.id))?.labels, { env: 'prod' });
  const users = (await h.api('GET', '/users')).body.users as Array<{ name: string }>;
  assert.equal(users.some((u) => u.name === 'mallory'), false);
});

test('console operator limited to env=prod: other hosts are absent from every page and the API says they do not exist', async () => {
  const page = await h.loginPage(limited);
  await page.goto('/agents');
  await page.getByText('prod-web').first().waitFor();
  assert.equal(await page.getByText('staging-web').count(), 0, 'the staging host is not listed');
  await checkPage(page, 'session', 'limited-agents');
  await page.goto('/');
  await page.getByTestId('count-total').filter({ hasText: /^\s*1\b/ }).waitFor();
  await page.goto(`/agents/${staging.id}`);
  await page.getByRole('alert').filter({ hasText: /cannot find|not found/i }).waitFor();
  assert.equal(await page.getByText('staging-web').count(), 0);
  await checkPage(page, 'session', 'limited-other-agent');
  const list = await pageApi(page, 'GET', '/agents');
  assert.deepEqual((list.body.agents as Array<{ hostname: string }>).map((a) => a.hostname), ['prod-web']);
  assert.equal(list.body.total, 1);
  assert.equal((await pageApi(page, 'GET', `/agents/${staging.id}/health`)).status, 404);
  const job = await pageApi(page, 'POST', '/jobs', { agent_id: staging.id, module: 'systeminfo', action: 'get_hostname' });
  assert.equal(job.status, 404, JSON.stringify(job.body));
  // A label target is cut down to the operator's hosts: env=staging reaches nothing.
  const batch = await pageApi(page, 'POST', '/batches', { target: { label: { env: 'staging' } }, module: 'systeminfo', action: 'get_hostname' });
  if (batch.status < 300) assert.deepEqual((batch.body.batch as { hosts: unknown[] }).hosts, []);
  else assert.match(String(batch.body.code), /not-found|invalid-params|permission-denied/);
  const picked = await pageApi(page, 'POST', '/batches', { target: { agents: [prod.id, staging.id] }, module: 'systeminfo', action: 'get_hostname' });
  assert.notEqual(picked.status, 201, 'a selection naming a host out of reach is refused as a whole');
  const jobs = (await h.api('GET', `/jobs?agent_id=${staging.id}`)).body.jobs as unknown[];
  assert.equal(jobs.length, 0, 'no job reached the staging host');
  // Its own host works.
  const own = await pageApi(page, 'POST', '/jobs', { agent_id: prod.id, module: 'systeminfo', action: 'get_hostname' });
  assert.equal(own.status, 201, JSON.stringify(own.body));
});

test('console login throttling: after 3 failures a name waits, even with the right password; after 8 from one address, every name does', async () => {
  const dave = await h.addUser('dave', 'viewer');
  const page = await h.newPage();
  await page.goto('/');
  const err = page.getByTestId('login-error');
  for (let i = 0; i < 3; i++) {
    assert.equal(await fillLogin(page, { name: dave.name, password: `wrong-${i}` }), 401);
    await err.filter({ hasText: /wrong user name or password/ }).waitFor();
  }
  assert.equal(await fillLogin(page, dave), 429);
  await err.filter({ hasText: /too many/i }).waitFor();
  assert.equal(await page.getByTestId('current-user').count(), 0, 'the right password is refused while throttled');
  await checkPage(page, 'session', 'login-throttled');
  const r = await pageApi(page, 'POST', '/session', { name: dave.name, password: dave.password }, false);
  assert.equal(r.status, 429);
  assert.equal(r.body.code, 'rate-limited');
  // The address: failures of many names add up (wrong password, unknown name, dave's 3 and this one so far).
  let throttled = false;
  for (let i = 0; i < 8 && !throttled; i++) {
    const x = await pageApi(page, 'POST', '/session', { name: `ghost-${i}`, password: 'nope-nope-nope' }, false);
    throttled = x.status === 429;
  }
  assert.ok(throttled, 'the address is throttled');
  const admin = await pageApi(page, 'POST', '/session', { name: ADMIN.name, password: ADMIN.password }, false);
  assert.equal(admin.status, 429, 'a correct login from the throttled address waits too');
});
