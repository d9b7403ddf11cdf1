/**
 * How the browser tests work the console's pages: one function per user step, written against the
 * accessible names and data-testids docs/console.md lists, so a change of the console's markup is
 * fixed here once and the tests read as what a user does.
 */
import fs from 'node:fs';
import type { Locator, Page } from 'playwright-core';

/** A table row (in any table of the page) naming `host`. */
export function hostRow(page: Page, host: string): Locator {
  return page.getByRole('row').filter({ has: page.getByText(host, { exact: true }) });
}

/** The row of `host` showing `state` as its job's or agent's state word. */
export function hostState(page: Page, host: string, state: string): Locator {
  return hostRow(page, host).filter({ has: page.getByText(state, { exact: true }) });
}

export function agentRow(page: Page, host: string): Locator {
  return page.getByTestId('agents-table').getByRole('row').filter({ has: page.getByText(host, { exact: true }) });
}

/** The agent list, filtered through its URL. */
export async function openAgents(page: Page, filter: { state?: string; label?: string; q?: string } = {}): Promise<void> {
  const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as Array<[string, string]>).toString();
  await page.goto(`/agents${qs ? `?${qs}` : ''}`);
  await page.getByTestId('agents-table').waitFor();
}

/** Approves a pending agent from its row of the agent list. */
export async function approve(page: Page, host: string): Promise<void> {
  await agentRow(page, host).getByRole('button', { name: /^approve/i }).click();
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
  await form.getByRole('button', { name: /^run/i }).click();
  await page.waitForURL(/\/batches\/[^/]+$/);
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
}

export async function retryFailed(page: Page): Promise<void> {
  await page.getByRole('button', { name: /retry failed/i }).click();
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

/** An agent's page, on its firewall part. */
export async function openFirewall(page: Page, agentId: string): Promise<void> {
  await page.goto(`/agents/${encodeURIComponent(agentId)}`);
  await page.getByRole('tab', { name: /firewall/i }).click();
  await page.getByTestId('zone-public').waitFor({ timeout: 40_000 });
}

export function serviceInZone(page: Page, zone: string, service: string): Locator {
  return page.getByTestId(`zone-${zone}`).getByTestId('services').getByText(service, { exact: true });
}

/**
 * Adds a service to a zone: the preview first (its text is returned), then apply with a confirm
 * timeout; returns once the countdown shows, with the deadline it counts down to.
 */
export async function addService(page: Page, o: { zone: string; service: string; confirmTimeout: number }): Promise<{ preview: string; confirmBy: number }> {
  const zone = page.getByTestId(`zone-${o.zone}`);
  await zone.getByRole('button', { name: /add service/i }).click();
  const form = page.getByTestId('change-form');
  await form.getByLabel('Service').fill(o.service);
  await form.getByLabel(/confirm within/i).fill(String(o.confirmTimeout));
  await form.getByRole('button', { name: /^preview/i }).click();
  const preview = (await page.getByTestId('change-preview').textContent()) ?? '';
  await page.getByRole('button', { name: /^apply/i }).click();
  const countdown = page.getByTestId('confirm-countdown');
  await countdown.waitFor({ timeout: 40_000 });
  const by = await countdown.getAttribute('data-confirm-by');
  return { preview, confirmBy: by ? Date.parse(by) : Date.now() + o.confirmTimeout * 1000 };
}

export async function confirm(page: Page): Promise<void> {
  await page.getByRole('button', { name: /^confirm/i }).click();
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
  await page.getByRole('button', { name: /new template/i }).click();
  const form = page.getByTestId('template-form');
  await form.getByLabel('Name').fill(t.name);
  await form.getByLabel('Zone').fill(t.zone);
  await form.getByLabel('Services').fill(t.services.join(', '));
  await form.getByLabel('Ports').fill(t.ports.join(', '));
  await form.getByRole('button', { name: /^save|^create/i }).click();
  await page.waitForURL(/\/templates\/[^/]+$/);
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
}

/** Previews a template on the agents named; gives each host's preview text. */
export async function previewTemplate(page: Page, templateId: string, target: { agents: string[] }): Promise<Record<string, string>> {
  await page.goto(`/templates/${encodeURIComponent(templateId)}`);
  for (const host of target.agents) await page.getByRole('checkbox', { name: host }).check();
  await page.getByRole('button', { name: /^preview/i }).click();
  const out: Record<string, string> = {};
  for (const host of target.agents) {
    const row = hostState(page, host, 'completed');
    await row.waitFor({ timeout: 60_000 });
    out[host] = (await row.textContent()) ?? '';
  }
  return out;
}

export async function applyTemplate(page: Page): Promise<void> {
  await page.getByRole('button', { name: /^apply/i }).click();
}
