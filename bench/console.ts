/**
 * The web console with 2,000 agents: server time of the dashboard and agent-list requests, time to
 * the first render with data in a real browser (Debian's chromium through playwright-core), and the
 * JavaScript and CSS shipped to the browser, compressed. Aims: 300 ms server, 1 s first render,
 * under 150 KB of compressed JS+CSS.
 *
 * The agents (and 10,000 jobs, some failed) are written into the server's SQLite database through
 * its storage layer before the server starts; the server then runs as a real process over TLS.
 *
 *   npm run build && node --import tsx bench/console.ts [agents]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Agent, request } from 'undici';
import { openSqliteStorage } from '../src/server/storage/sqlite.ts';
import type { AgentRecord, JobRecord, JobStatus } from '../src/server/storage/storage.ts';
import { makeCerts } from '../test/helpers/certs.ts';
import { startServer } from '../test/helpers/server.ts';
import { launchBrowser } from '../test/console/harness.ts';

const AGENTS = Number(process.argv[2] ?? 2000);
const JOBS = 10_000;
const RUNS = 15;
const BROWSER_RUNS = Number(process.env.BENCH_BROWSER_RUNS ?? 9);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-bench-console-'));
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** 2,000 agents in the states a fleet has: mostly online, some stale, offline, pending, rejected. */
function seed(file: string): void {
  const storage = openSqliteStorage(file);
  // One transaction on the storage's own connection: 12,000 inserts, each its own commit, take a minute.
  const db = (storage as unknown as { db: { transaction(fn: () => void): () => void } }).db;
  db.transaction(() => fill(storage))();
  storage.close();
}

function fill(storage: ReturnType<typeof openSqliteStorage>): void {
  const now = Date.now();
  const ids: string[] = [];
  const oses = ['Debian GNU/Linux 12', 'Ubuntu 24.04', 'Rocky Linux 9', 'Fedora 41'];
  for (let i = 0; i < AGENTS; i++) {
    const kind = i % 20;
    const status = kind === 19 ? 'pending' : kind === 18 ? 'rejected' : 'active';
    // online: seen a few seconds ago; stale: minutes; offline: days.
    const lastSeen = kind < 14 ? now - 2_000 : kind < 16 ? now - 5 * 60_000 : now - 3 * 86_400_000;
    const a: AgentRecord = {
      id: randomUUID(),
      keyHash: randomBytes(32).toString('hex'),
      status,
      machineId: randomBytes(16).toString('hex'),
      hostname: `${['web', 'db', 'cache', 'mail'][i % 4]}-${String(i).padStart(4, '0')}.example.net`,
      ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      osInfo: { system: 'Linux', release: '6.1.0', version: oses[i % oses.length] },
      modules: ['systeminfo', 'firewalld', 'aide'],
      version: '0.1.0',
      features: [],
      createdAt: now - 30 * 86_400_000,
      lastSeen,
      tokenId: null,
      mode: 'pull',
      endpoint: null,
      pushKey: null,
      labels: { env: i % 3 === 0 ? 'staging' : 'prod', role: ['web', 'db', 'cache', 'mail'][i % 4]!, site: `dc${i % 5}` },
    };
    storage.enroll(null, a, now);
    if (status === 'active') ids.push(a.id);
  }
  const statuses: JobStatus[] = ['completed', 'completed', 'completed', 'completed', 'failed', 'expired', 'queued'];
  for (let i = 0; i < JOBS; i++) {
    const status = statuses[i % statuses.length]!;
    const created = now - (JOBS - i) * 1000;
    const final = status !== 'queued';
    const j: JobRecord = {
      id: randomUUID(),
      agentId: ids[i % ids.length]!,
      module: 'firewalld',
      action: 'get_zones',
      params: {},
      status,
      createdAt: created,
      sentAt: final ? created + 100 : null,
      lastSentAt: final ? created + 100 : null,
      deliveries: final ? 1 : 0,
      finishedAt: final ? created + 500 : null,
      expiresAt: created + 3_600_000,
      result: final ? { success: status === 'completed', data: status === 'completed' ? { zones: ['public'] } : null, error: status === 'completed' ? null : 'cannot reach firewalld' } as unknown as JobRecord['result'] : null,
    };
    storage.createJob(j);
  }
}

/** Wall time of GET requests over one keep-alive TLS connection, after a warm-up call. */
async function timeGets(url: string, ca: Buffer, token: string, p: string): Promise<{ times: number[]; bytes: number; status: number }> {
  const d = new Agent({ connect: { ca }, connections: 1 });
  const times: number[] = [];
  let bytes = 0;
  let status = 0;
  try {
    for (let i = 0; i < RUNS + 1; i++) {
      const t = performance.now();
      const res = await request(`${url}${p}`, { dispatcher: d, headers: { authorization: `Bearer ${token}` } });
      const body = await res.body.arrayBuffer();
      const ms = performance.now() - t;
      status = res.statusCode;
      bytes = body.byteLength;
      if (i > 0) times.push(ms);
    }
  } finally {
    await d.close();
  }
  return { times, bytes, status };
}

/** Logs in through the login form; the storage state (the session cookie) for later contexts. */
async function loginState(browser: Browser, url: string, name: string, password: string): Promise<StorageState> {
  const ctx = await browser.newContext({ baseURL: url });
  const page = await ctx.newPage();
  await page.goto('/');
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('current-user').waitFor();
  const state = await ctx.storageState();
  await ctx.close();
  return state;
}

type StorageState = Awaited<ReturnType<BrowserContext['storageState']>>;

interface RenderRun {
  /** From page.goto to the page showing the data, as this process sees it. */
  ms: number;
  /** From the navigation's start to the data in the DOM, on the page's own clock (performance.now()). */
  inPage: number;
  jsCssEncoded: number;
  jsCssDecoded: number;
  encodings: Set<string>;
}

/**
 * A script run before the page's own (through the DevTools protocol, so the CSP does not apply):
 * a MutationObserver that records, on the page's clock, when `selector` first matches an element
 * with a digit in its text, then the frame after (rAF, then a task: the rows laid out and painted).
 * The bench waits on that with one small evaluate: Playwright's locators would inject their selector
 * engine (over 200 ms of script on this machine) while the page loads.
 */
function readyProbe(selector: string): string {
  return `(() => {
    const sel = ${JSON.stringify(selector)};
    let done;
    window.__tuxsecReady = new Promise((r) => { done = r; });
    const obs = new MutationObserver(() => {
      const el = document.querySelector(sel);
      if (el && /[0-9]/.test(el.textContent || '')) { obs.disconnect(); requestAnimationFrame(() => setTimeout(() => done(performance.now()), 0)); }
    });
    obs.observe(document, { childList: true, subtree: true, characterData: true });
  })()`;
}

/** Waits for the probe: the page's time of its first render with data. */
async function readyAt(page: Page): Promise<number> {
  return (await page.evaluate('window.__tuxsecReady')) as number;
}

/**
 * Time from navigation to the page showing the data from the API (`selector`), in a new context
 * each run (a cold cache, as a first visit), and the script and style bytes it loaded.
 */
async function timeRender(browser: Browser, url: string, state: StorageState, p: string, selector: string): Promise<RenderRun[]> {
  const runs: RenderRun[] = [];
  for (let i = 0; i < BROWSER_RUNS + 1; i++) {
    const ctx = await browser.newContext({ baseURL: url, storageState: state });
    await ctx.addInitScript(readyProbe(selector));
    const page = await ctx.newPage();
    const assets: Array<Promise<{ enc: number; dec: number; encoding: string }>> = [];
    page.on('response', (res) => {
      const type = res.request().resourceType();
      if (type !== 'script' && type !== 'stylesheet') return;
      assets.push(
        (async () => {
          const sizes = await res.request().sizes();
          const body = await res.body();
          return { enc: sizes.responseBodySize, dec: body.length, encoding: (await res.allHeaders())['content-encoding'] ?? 'identity' };
        })(),
      );
    });
    const t = performance.now();
    await page.goto(p, { waitUntil: 'commit' });
    const inPage = await readyAt(page);
    const ms = performance.now() - t;
    await page.locator(selector).first().waitFor();
    const got = await Promise.all(assets);
    if (i > 0) {
      runs.push({
        ms,
        inPage,
        jsCssEncoded: got.reduce((s, a) => s + a.enc, 0),
        jsCssDecoded: got.reduce((s, a) => s + a.dec, 0),
        encodings: new Set(got.map((a) => a.encoding)),
      });
    }
    await ctx.close();
  }
  return runs;
}

/** The same with a warm cache: one context, the page loaded again (assets cached, a session open). */
async function timeWarm(browser: Browser, url: string, state: StorageState, p: string, selector: string): Promise<Array<{ ms: number; inPage: number }>> {
  const ctx = await browser.newContext({ baseURL: url, storageState: state });
  await ctx.addInitScript(readyProbe(selector));
  const page = await ctx.newPage();
  const times: Array<{ ms: number; inPage: number }> = [];
  for (let i = 0; i < BROWSER_RUNS + 1; i++) {
    const t = performance.now();
    await page.goto(p, { waitUntil: 'commit' });
    const inPage = await readyAt(page);
    const ms = performance.now() - t;
    await page.locator(selector).first().waitFor();
    if (i > 0) times.push({ ms, inPage });
  }
  await ctx.close();
  return times;
}

const certs = await makeCerts(path.join(dir, 'certs'));
const t0 = performance.now();
seed(path.join(dir, 'server.db'));
const seedMs = performance.now() - t0;
const srv = await startServer({ dir, certs, config: { log_level: 'warn' } });
let browser: Browser | null = null;
let home = '';
try {
  const ca = fs.readFileSync(certs.ca);
  console.log(`## web console with ${AGENTS} agents and ${JOBS} jobs (seeded in ${seedMs.toFixed(0)} ms)\n`);
  console.log(`NODE_EXTRA_CA_CERTS: ${process.env.NODE_EXTRA_CA_CERTS ? `set (${process.env.NODE_EXTRA_CA_CERTS})` : 'unset'}; ${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(1)} at the start; chromium headless\n`);
  console.log('| request | status | body KiB | p50 ms | p90 ms | max ms | aim |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const p of ['/api/v1/dashboard', '/api/v1/agents?limit=50', '/api/v1/agents?limit=50&state=online&label=env%3Dprod', '/api/v1/agents?limit=50&q=web-19', '/api/v1/agents', '/api/v1/agents?limit=1000']) {
    const r = await timeGets(srv.url, ca, srv.adminToken, p);
    const p50 = pct(r.times, 50);
    console.log(`| GET ${p} | ${r.status} | ${(r.bytes / 1024).toFixed(1)} | ${p50.toFixed(1)} | ${pct(r.times, 90).toFixed(1)} | ${Math.max(...r.times).toFixed(1)} | ${p50 < 300 ? 'under 300 ms' : '**over 300 ms**'} |`);
  }

  const admin = { name: 'bench-admin', password: 'bench-admin-password-0123456789' };
  const d = new Agent({ connect: { ca } });
  const u = await request(`${srv.url}/api/v1/users`, {
    method: 'POST',
    dispatcher: d,
    headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...admin, role: 'admin' }),
  });
  if (u.statusCode >= 300) throw new Error(`cannot add the bench user: ${u.statusCode} ${await u.body.text()}`);
  await u.body.dump();
  await d.close();

  ({ browser, home } = await launchBrowser(certs.ca));
  const state = await loginState(browser, srv.url, admin.name, admin.password);
  // "Rendered with data": a digit in the dashboard's total count, in the agent list's first row.
  const pages: Array<[string, string, string]> = [
    ['dashboard', '/', '[data-testid="count-total"]'],
    ['agents', '/agents', '[data-testid="agents-table"] tbody tr'],
  ];
  console.log(`\n${BROWSER_RUNS} runs each. wall: from page.goto until the data is in the DOM, as this process sees it; page: the same on the page's own clock, from the navigation's start.\n`);
  console.log('| page | cold wall p50 / p95 ms | cold page p50 / p95 ms | warm wall p50 / p95 ms | warm page p50 / p95 ms | aim (wall p50) | JS+CSS compressed KiB | JS+CSS uncompressed KiB | encoding |');
  console.log('| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |');
  const f = (xs: number[]): string => `${pct(xs, 50).toFixed(0)} / ${pct(xs, 95).toFixed(0)}`;
  for (const [name, p, selector] of pages) {
    const runs = await timeRender(browser, srv.url, state, p, selector);
    const warm = await timeWarm(browser, srv.url, state, p, selector);
    const r0 = runs[0]!;
    const cold = runs.map((r) => r.ms);
    const met = pct(cold, 50) < 1000 && pct(warm.map((w) => w.ms), 50) < 1000;
    console.log(
      `| ${name} (${p}) | ${f(cold)} | ${f(runs.map((r) => r.inPage))} | ${f(warm.map((w) => w.ms))} | ${f(warm.map((w) => w.inPage))} | ${met ? 'under 1 s' : '**over 1 s**'} | ${(r0.jsCssEncoded / 1024).toFixed(1)}${r0.jsCssEncoded < 150 * 1024 ? '' : ' **over 150 KB**'} | ${(r0.jsCssDecoded / 1024).toFixed(1)} | ${[...r0.encodings].join(', ')} |`,
    );
  }
  console.log(`\nload average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
} finally {
  await browser?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
  await srv.stop();
  srv.cleanup();
}
