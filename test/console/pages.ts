/**
 * How the browser tests work the console's pages: one function per user step, written against the
 * accessible names and data-testids docs/console.md lists, so a change of the console's markup is
 * fixed here once and the tests read as what a user does.
 */
import fs from 'node:fs';
import type { Locator, Page } from 'playwright-core';

/** The row of `host` in a batch's host table or a template preview's or rollout's. */
export function hostRow(page: Page, host: string): Locator {
  return page.locator(`[data-testid="batch-host-${host}"], [data-testid="preview-host-${host}"], [data-testid="apply-host-${host}"]`);
}

/** The row of `host` showing `state` as its job's or agent's state word. */
export function hostState(page: Page, host: string, state: string): Locator {
  return hostRow(page, host).filter({ has: page.getByText(state, { exact: true }) });
}

export function agentRow(page: Page, host: string): Locator {
  return page.getByTestId(`agent-row-${host}`);
}

/** The agent list, filtered through its URL. */
export async function openAgents(page: Page, filter: { state?: string; label?: string; q?: string } = {}): Promise<void> {
  const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as Array<[string, string]>).toString();
  await page.goto(`/agents${qs ? `?${qs}` : ''}`);
  await page.getByTestId('agents-table').waitFor();
}

/** Approves a pending agent from its row of the agent list. */
export async function approve(page: Page, host: string): Promise<void> {
  await page.getByRole('button', { name: `Approve ${host}`, exact: true }).click();
}

/**
 * Submits a job for a label from the jobs page; waits for the batch page it leads to and gives the
 * batch's id (from the URL).
 */
export async function submitBatch(page: Page, job: { label: string; module: string; action: string }): Promise<string> {
  await page.goto('/jobs');
  const form = page.getByTestId('new-job');
  await form.getByLabel('Label', { exact: true }).fill(job.label);
  await form.getByLabel('Module').selectOption(job.module);
  await form.getByLabel('Action').selectOption(job.action);
  await form.getByTestId('batch-submit').click();
  await page.waitForURL(/\/batches\/[^/]+$/);
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
}

/** Waits until the page's live updates are on (its event stream is open). */
export async function liveUpdates(page: Page): Promise<void> {
  await page.getByTestId('live-state').filter({ hasText: 'Live updates on' }).waitFor();
}

export async function retryFailed(page: Page): Promise<void> {
  await page.getByTestId('retry-failed').click();
}

export async function openAudit(page: Page): Promise<void> {
  await page.goto('/audit');
  await page.getByTestId('audit-table').waitFor();
}

/** Downloads the audit export in `format` through its link on the audit page; gives its text. */
export async function exportAudit(page: Page, format: 'csv' | 'jsonl'): Promise<string> {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId(`audit-export-${format}`).click()]);
  const p = await dl.path();
  return fs.readFileSync(p, 'utf8');
}

/** An agent's page on its firewall tab, as read from the host (an operator's visit reads it). */
export async function openFirewall(page: Page, agentId: string): Promise<void> {
  await page.goto(`/agents/${encodeURIComponent(agentId)}`);
  await page.getByRole('tab', { name: 'Firewall' }).click();
  await page.getByTestId('zone-public').waitFor({ timeout: 40_000 });
}

/** A service shown in a zone after reading the firewall from the host again. */
export async function serviceInZone(page: Page, zone: string, service: string): Promise<Locator> {
  await page.getByTestId('firewall-refresh').click();
  await page.getByTestId('firewall-refresh').filter({ hasText: 'Read from host' }).waitFor({ timeout: 40_000 });
  return page.getByTestId(`zone-${zone}`).getByTestId('services').getByText(service, { exact: true });
}

/**
 * Adds a service to a zone: the preview first (its text is returned), then apply with a confirm
 * timeout; returns once the countdown shows, with the deadline it counts down to.
 */
export async function addService(page: Page, o: { zone: string; service: string; confirmTimeout: number }): Promise<{ preview: string; confirmBy: number }> {
  const zone = page.getByTestId(`zone-${o.zone}`);
  await zone.getByRole('button', { name: `Add service to zone ${o.zone}`, exact: true }).click();
  const form = page.getByTestId('change-form');
  await form.getByLabel('Service', { exact: true }).fill(o.service);
  await form.getByLabel(/confirm within/i).fill(String(o.confirmTimeout));
  await form.getByTestId('change-preview-button').click();
  const preview = (await page.getByTestId('change-preview').textContent({ timeout: 40_000 })) ?? '';
  await page.getByTestId('change-apply').click();
  const countdown = page.getByTestId('confirm-countdown');
  await countdown.waitFor({ timeout: 40_000 });
  const by = await countdown.getAttribute('data-confirm-by');
  return { preview, confirmBy: by ? Date.parse(by) : Date.now() + o.confirmTimeout * 1000 };
}

export async function confirm(page: Page): Promise<void> {
  await page.getByTestId('change-confirm').click();
}

export function confirmed(page: Page): Locator {
  return page.getByTestId('change-confirmed');
}

export function rolledBack(page: Page): Locator {
  return page.getByTestId('change-rolled-back');
}

/** Creates a template with one zone from the templates page; gives its id (from the URL). */
export async function createTemplate(page: Page, t: { name: string; zone: string; services: string[]; ports: string[] }): Promise<string> {
  await page.goto('/templates');
  await page.getByTestId('new-template').click();
  const form = page.getByTestId('template-form');
  await form.getByLabel('Name', { exact: true }).fill(t.name);
  const zone = form.getByTestId('template-zone-0');
  await zone.getByLabel('Zone', { exact: true }).fill(t.zone);
  await zone.getByLabel('Services', { exact: true }).fill(t.services.join('\n'));
  await zone.getByLabel('Ports', { exact: true }).fill(t.ports.join('\n'));
  await form.getByTestId('template-save').click();
  await page.waitForURL((u) => /^\/templates\/[^/]+$/.test(u.pathname) && u.pathname !== '/templates/new');
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
}

/** Previews a template on the agents named; gives each host's preview text. */
export async function previewTemplate(page: Page, templateId: string, target: { agents: string[] }): Promise<Record<string, string>> {
  await page.goto(`/templates/${encodeURIComponent(templateId)}`);
  for (const host of target.agents) await page.getByRole('checkbox', { name: host, exact: true }).check();
  await page.getByTestId('template-preview').click();
  const out: Record<string, string> = {};
  for (const host of target.agents) {
    const row = hostState(page, host, 'completed');
    await row.waitFor({ timeout: 60_000 });
    out[host] = (await row.textContent()) ?? '';
  }
  return out;
}

/** Applies the previewed template (with the page's confirm timeout); waits for the per-host table. */
export async function applyTemplate(page: Page): Promise<void> {
  await page.getByTestId('template-apply').click();
  await page.getByTestId('apply-hosts').waitFor({ timeout: 40_000 });
}

/** Confirms the applied template on the hosts that changed; waits until a host says confirmed. */
export async function confirmTemplate(page: Page): Promise<void> {
  await page.getByTestId('template-confirm').click();
  await page.getByTestId('apply-hosts').getByTestId('host-outcome').filter({ hasText: /^confirmed$/ }).first().waitFor({ timeout: 40_000 });
}

/** The dashboard, once its drift list (or its "no host" line) is there. */
export async function openDashboard(page: Page): Promise<void> {
  await page.goto('/');
  await page.getByTestId('agent-counts').waitFor();
}

/** The row of `host` in the dashboard's list of drifted firewalls. */
export function driftedRow(page: Page, host: string): Locator {
  return page.getByTestId(`drifted-${host}`);
}

/** Accepts `host`'s current firewall as its baseline from the dashboard. */
export async function acceptBaseline(page: Page, host: string): Promise<void> {
  await page.getByRole('button', { name: `Accept as baseline the firewall of ${host}`, exact: true }).click();
}

/**
 * From now on (until the page is loaded again) the page's GETs of `path` (under /api/v1) reach it
 * `ms` late, each holding what the server said when it was asked: as over a slow link, so live
 * events arrive while a reload is under way. Done in the page, around its fetch (Playwright's own
 * requests would not trust the test's certificate authority, as the browser does).
 */
export async function slowReads(page: Page, path: string, ms: number): Promise<void> {
  await page.evaluate(
    ([apiPath, wait]) => {
      const real = window.fetch.bind(window);
      window.fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
        const res = await real(input, init);
        const url = new URL(input instanceof Request ? input.url : String(input), window.location.href);
        if (url.pathname !== apiPath || (init?.method ?? 'GET') !== 'GET') return res;
        const body = await res.arrayBuffer();
        await new Promise((r) => window.setTimeout(r, wait));
        return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
      };
    },
    [`/api/v1${path}`, ms] as const,
  );
}
