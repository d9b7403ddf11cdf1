// Every page of the console, rendered with real data (agents, a firewalld, a batch, a template, audit
// entries): axe-core finds no serious or critical violation, no script error or CSP violation, and a
// screenshot of each is written to test-output/console/pages-<page>.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { ADMIN, checkPage, startConsole, type ConsoleAgent, type ConsoleHarness, type ConsoleUser } from './harness.ts';

let h: ConsoleHarness;
let agent: ConsoleAgent;
let batchId: string;
let templateId: string;
const others: ConsoleUser[] = [];

before(async () => {
  h = await startConsole({ firewalld: true });
  agent = await h.addAgent('page-host', { labels: { env: 'prod', role: 'web' } });
  await h.addAgent('page-host-2', { labels: { env: 'staging', role: 'db' } });
  others.push(await h.addUser('vera', 'viewer'), await h.addUser('otto', 'operator', { selector: { env: 'prod' } }));
  const b = await h.api('POST', '/batches', { target: { label: { env: 'prod' } }, module: 'systeminfo', action: 'get_hostname' });
  assert.equal(b.status, 201, JSON.stringify(b.body));
  batchId = (b.body.batch as { id: string }).id;
  const t = await h.api('POST', '/templates', {
    name: 'web-servers',
    description: 'HTTP and HTTPS open in public',
    zones: { public: { services: ['http', 'https'], ports: ['8080/tcp'], rich_rules: [] } },
  });
  assert.ok(t.status === 200 || t.status === 201, JSON.stringify(t.body));
  templateId = ((t.body.template as { id: string } | undefined) ?? (t.body as { id: string })).id;
});

after(async () => {
  await h?.stop();
});

/** Goes to `p` and waits until the page's main heading and `ready` show. */
async function visit(page: Page, p: string, ready: (page: Page) => Promise<unknown>): Promise<void> {
  await page.goto(p);
  await page.getByRole('heading', { level: 1 }).first().waitFor();
  await ready(page);
}

test('console pages: the login page passes axe', async () => {
  const page = await h.newPage();
  await page.goto('/login');
  await page.getByTestId('login-form').waitFor();
  await checkPage(page, 'pages', 'login');
});

test('console pages: every page an admin sees passes axe, with a screenshot', async () => {
  const page = await h.loginPage(ADMIN);
  const pages: Array<[string, string, (p: Page) => Promise<unknown>]> = [
    ['dashboard', '/', (p) => p.getByTestId('count-total').waitFor()],
    ['agents', '/agents', (p) => p.getByText('page-host-2').first().waitFor()],
    ['agent', `/agents/${agent.id}`, (p) => p.getByText('page-host').first().waitFor()],
    ['agent-firewall', `/agents/${agent.id}`, async (p) => {
      await p.getByRole('tab', { name: /firewall/i }).click();
      await p.getByTestId('zone-public').waitFor({ timeout: 40_000 });
    }],
    ['jobs', '/jobs', (p) => p.getByRole('table').first().waitFor()],
    ['batch', `/batches/${batchId}`, (p) => p.getByText('page-host').first().waitFor()],
    ['templates', '/templates', (p) => p.getByText('web-servers').first().waitFor()],
    ['template', `/templates/${templateId}`, (p) => p.getByText('web-servers').first().waitFor()],
    ['audit', '/audit', (p) => p.getByTestId('audit-table').waitFor()],
    ['users', '/users', (p) => p.getByText('vera').first().waitFor()],
  ];
  const failures: string[] = [];
  for (const [name, p, ready] of pages) {
    try {
      await visit(page, p, ready);
      await checkPage(page, 'pages', name);
    } catch (e) {
      // Every page is looked at even when one fails; all failures are reported together.
      failures.push(`${name} (${p}): ${(e as Error).message}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('console pages: a viewer\'s and a limited operator\'s pages pass axe too', async () => {
  for (const user of others) {
    const page = await h.loginPage(user);
    for (const [name, p] of [['dashboard', '/'], ['agents', '/agents'], ['agent', `/agents/${agent.id}`]] as const) {
      await visit(page, p, (x) => (name === 'dashboard' ? x.getByTestId('count-total').waitFor() : x.getByText('page-host').first().waitFor()));
      await checkPage(page, 'pages', `${user.name}-${name}`);
    }
  }
});
