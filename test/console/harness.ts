/**
 * Harness of the console's browser tests: Debian's chromium driven by playwright-core against a real
 * tuxsec-server over real TLS, real pull agents (each in its own mount and UTS namespace, so it enrolls
 * as its own machine with its own host name) talking to real rootd, and, for the firewall pages, a
 * real firewalld in a network namespace. Plus the checks every page gets: axe-core (no serious or
 * critical violation), no uncaught script error, no Content-Security-Policy violation, and a
 * screenshot under test-output/console/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { Agent, request } from 'undici';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import type { AgentView } from '../../src/protocol/operator-api.ts';
import { AGENT_JS, certsIn, makeAgentEnv, startProc, startServer, tempDir, until, type AgentEnv, type Proc, type ServerHandle } from '../agent/harness.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { jsonOrRaw, readReply, type HttpReply } from '../helpers/server.ts';
import { ROOT, startRootd, type RootdHandle, type StartOptions } from '../helpers/rootd.ts';

export { until };

export const CHROMIUM = '/usr/bin/chromium';
export const OUTPUT_DIR = path.join(ROOT, 'test-output', 'console');
const LAUNCHER = path.join(import.meta.dirname, 'agent-launch.sh');
const AXE_SOURCE = fs.readFileSync(path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const CERTUTIL = '/usr/bin/certutil';

/**
 * A browser home whose NSS database trusts `caFile` as a CA, the way a user of the console adds their
 * site's CA: chromium on Linux reads $HOME/.pki/nssdb. The browser then verifies the server's
 * certificate for real (contexts keep ignoreHTTPSErrors false), host name included.
 */
async function browserHome(caFile: string): Promise<string> {
  const home = tempDir('tsc-home-');
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true, mode: 0o700 });
  for (const args of [
    ['-d', `sql:${db}`, '-N', '--empty-password'],
    ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'tuxsec-test-ca', '-i', caFile],
  ]) {
    const r = await run(CERTUTIL, args, { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`cannot run certutil ${args.slice(2).join(' ')}: ${r.stderr.trim()}`);
  }
  return home;
}

/**
 * Launches headless chromium trusting `caFile` (or trusting nothing of ours when it is null).
 * `--no-sandbox`: the tests run as root (CI runs them as root too), and chromium refuses to start its
 * sandbox as root; the pages it loads are our own console from a test server.
 */
export async function launchBrowser(caFile: string | null): Promise<{ browser: Browser; home: string }> {
  const home = caFile ? await browserHome(caFile) : tempDir('tsc-home-');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox'],
    env: { HOME: home, PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    timeout: 60_000,
  });
  return { browser, home };
}

// ---------------------------------------------------------------- page checks

/** What a page did that no console page may do: uncaught errors, CSP violations, requests elsewhere. */
export interface PageProblems {
  errors: string[];
}

const watched = new WeakMap<Page, PageProblems>();

/** Starts collecting uncaught script errors, Content-Security-Policy violations and requests to other origins of `page`. */
export function watchPage(page: Page, origin: string): PageProblems {
  const p: PageProblems = { errors: [] };
  watched.set(page, p);
  page.on('pageerror', (e) => p.errors.push(`uncaught: ${e.message}`));
  // Air-gapped: every asset from the console's own origin.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return;
    if (u.origin !== origin) p.errors.push(`request to another origin: ${r.url()}`);
  });
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) p.errors.push(`csp: ${m.text()}`);
  });
  return p;
}

/** Fails when the page threw or violated its Content-Security-Policy since watchPage. */
export function assertNoPageProblems(page: Page): void {
  const p = watched.get(page);
  if (p && p.errors.length > 0) throw new Error(`the page reported problems:\n  ${p.errors.join('\n  ')}`);
}

interface AxeNode {
  target: string[];
  html: string;
  failureSummary?: string;
}
interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  helpUrl: string;
  nodes: AxeNode[];
}

/**
 * Runs axe-core in the page (its source evaluated through the DevTools protocol, so the page's own
 * strict CSP stays on) and fails listing every serious or critical violation; minor and moderate ones
 * are printed only.
 */
export async function checkA11y(page: Page, name: string): Promise<void> {
  const has = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe === 'object');
  if (!has) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: unknown[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations;
  }) as AxeViolation[];
  const fmt = (v: AxeViolation): string =>
    `[${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n` +
    v.nodes.slice(0, 5).map((n) => `      at ${n.target.join(' ')}: ${n.html.slice(0, 160)}\n        ${(n.failureSummary ?? '').replace(/\n/g, '\n        ')}`).join('\n');
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = violations.filter((v) => !bad.includes(v));
  if (minor.length > 0) console.log(`axe (${name}): ${minor.length} minor/moderate:\n  ${minor.map(fmt).join('\n  ')}`);
  if (bad.length > 0) throw new Error(`axe (${name}): ${bad.length} serious/critical violation(s):\n  ${bad.map(fmt).join('\n  ')}`);
}

/** Writes a full-page screenshot to test-output/console/<test>-<page>.png; gives its path. */
export async function screenshot(page: Page, test: string, pageName: string): Promise<string> {
  fs.mkdirSync(OUTPUT_DIR, { recursive: true });
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '-');
  const file = path.join(OUTPUT_DIR, `${safe(test)}-${safe(pageName)}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The checks of one rendered page: axe, no script error or CSP violation, a screenshot. */
export async function checkPage(page: Page, test: string, pageName: string): Promise<void> {
  await screenshot(page, test, pageName);
  assertNoPageProblems(page);
  await checkA11y(page, `${test} ${pageName}`);
}

// ---------------------------------------------------------------- the console and its hosts

export interface ConsoleAgent {
  hostname: string;
  id: string;
  env: AgentEnv;
  proc: Proc | null;
  /** Starts the agent process (again). */
  start(): void;
  /** Stops the agent process (SIGTERM to its pid) and waits for it. */
  stop(): Promise<void>;
  /** The registration's output, for an agent held as pending. */
  registerOutput: string;
}

export interface ConsoleUser {
  name: string;
  password: string;
  role: 'admin' | 'operator' | 'viewer';
}

export interface ConsoleHarness {
  server: ServerHandle;
  url: string;
  dir: string;
  browser: Browser;
  rootd: RootdHandle;
  fw: FirewalldNetns | null;
  agents: ConsoleAgent[];
  /** Starts another rootd (another config), stopped with the harness. */
  addRootd(opts?: StartOptions): Promise<RootdHandle>;
  /**
   * Enrolls a real pull agent as its own machine named `hostname` (a `machineId` shared with an
   * enrolled agent makes it a second enrollment of that machine: held pending) and starts it.
   */
  addAgent(hostname: string, opts?: { machineId?: string; rootd?: RootdHandle; labels?: Record<string, string>; start?: boolean; config?: Record<string, unknown> }): Promise<ConsoleAgent>;
  /** Creates a console user through the admin API. */
  addUser(name: string, role: ConsoleUser['role'], opts?: { selector?: Record<string, string>; password?: string }): Promise<ConsoleUser>;
  /** Calls the operator API with the admin token (Node side, not the browser). */
  api(method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: unknown): Promise<HttpReply>;
  /** An agent as GET /api/v1/agents shows it to the admin. */
  agent(id: string): Promise<AgentView | undefined>;
  /** A fresh browser context (its own cookies) with a page watched for script errors and CSP violations. */
  newPage(): Promise<Page>;
  /** A fresh context logged in as `user` through the login form. */
  loginPage(user: ConsoleUser): Promise<Page>;
  stop(): Promise<void>;
}

export interface ConsoleOptions {
  /** Start a firewalld in a network namespace and enable rootd's firewalld module on it. */
  firewalld?: boolean;
  /** Extra server config. */
  config?: Record<string, unknown>;
  /** Extra config of the default rootd. */
  rootd?: StartOptions;
  /** Create the admin user ADMIN (default true). */
  admin?: boolean;
}

export const ADMIN: ConsoleUser = { name: 'alice', password: 'alice-password-0123456789', role: 'admin' };

/** Starts the server, rootd (and firewalld), the browser; creates the admin user `alice`. */
export async function startConsole(opts: ConsoleOptions = {}): Promise<ConsoleHarness> {
  const dir = tempDir('tsc-');
  const stoppers: Array<() => Promise<unknown>> = [];
  const stopAll = async (): Promise<void> => {
    for (const s of stoppers.reverse()) await s().catch((e: unknown) => console.error(`cannot stop: ${String(e)}`));
    stoppers.length = 0;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const certs = await certsIn(path.join(dir, 'certs'));
    // Short polls so jobs reach agents and states change within a test's time.
    const server = await startServer({ dir, certs, config: { sync_interval: 1, long_poll_max: 5, ...opts.config } });
    stoppers.push(() => server.stop());
    let fw: FirewalldNetns | null = null;
    if (opts.firewalld) {
      fw = await startFirewalldNetns();
      stoppers.push(() => fw!.stop());
    }
    const rootds: RootdHandle[] = [];
    const addRootd = async (o: StartOptions = {}): Promise<RootdHandle> => {
      const stateDir = tempDir('tsc-fw-');
      const fwConfig = fw
        ? { firewalld: { enabled: true, settings: { pending_file: path.join(stateDir, 'pending.json') } } }
        : { firewalld: { enabled: false } };
      const r = await startRootd({ ...o, config: { ...o.config, modules: { ...fwConfig, ...(o.config?.modules as object | undefined) } } });
      rootds.push(r);
      stoppers.push(async () => {
        await r.stop();
        fs.rmSync(stateDir, { recursive: true, force: true });
      });
      return r;
    };
    const rootd = await addRootd(opts.rootd);
    const { browser, home } = await launchBrowser(certs.ca);
    stoppers.push(async () => {
      await browser.close();
      fs.rmSync(home, { recursive: true, force: true });
    });
    const d = new Agent({ connect: { ca: fs.readFileSync(certs.ca) } });
    stoppers.push(() => d.close());
    const agents: ConsoleAgent[] = [];

    const api: ConsoleHarness['api'] = async (method, p, body) => {
      const res = await request(`${server.url}/api/v1${p}`, {
        method,
        dispatcher: d,
        headers: { authorization: 'Bearer test-admin-token-0123456789abcdef', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      return readReply(res);
    };

    // Runs a command line as one simulated host (own machine id and host name; see agent-launch.sh).
    const asHost = (machineIdFile: string, hostname: string, uid: number, gid: number): string[] => [
      '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', LAUNCHER, machineIdFile, hostname, String(uid), String(gid),
    ];

    const addAgent: ConsoleHarness['addAgent'] = async (hostname, o = {}) => {
      if (!/^[a-z][a-z0-9-]{0,40}$/.test(hostname)) throw new Error(`bad test host name "${hostname}"`);
      const r = o.rootd ?? rootd;
      const env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: r.socketPath, poll_interval: 1, ...o.config });
      stoppers.push(async () => fs.rmSync(env.dir, { recursive: true, force: true }));
      const midFile = path.join(env.dir, 'machine-id');
      fs.writeFileSync(midFile, (o.machineId ?? crypto.randomUUID().replace(/-/g, '')) + '\n', { mode: 0o444 });
      // Labels the way a site gives them: on the enrollment token, received by the enrolling agent.
      const tok = await api('POST', '/tokens', { uses: 1, ttl: 600, ...(o.labels ? { labels: o.labels } : {}) });
      if (typeof tok.body.token !== 'string') throw new Error(`cannot create an enrollment token: ${JSON.stringify(tok.body)}`);
      const reg = await run('/usr/bin/unshare', [...asHost(midFile, hostname, 0, 0), process.execPath, AGENT_JS, 'register', '--server', server.url, '--config', env.configPath, '--token', tok.body.token], { timeoutMs: 30_000 });
      // 0: enrolled; 3: held pending an operator's approval (a second enrollment of one machine).
      if (reg.code !== 0 && reg.code !== 3) throw new Error(`cannot register agent ${hostname}: ${reg.stdout}${reg.stderr}`);
      const id = String((YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>).agent_id);
      const a: ConsoleAgent = {
        hostname,
        id,
        env,
        proc: null,
        registerOutput: reg.stdout + reg.stderr,
        start() {
          if (a.proc && a.proc.proc.exitCode === null && a.proc.proc.signalCode === null) return;
          a.proc = startProc('/usr/bin/unshare', [...asHost(midFile, hostname, env.uid, env.gid), process.execPath, AGENT_JS, '--config', env.configPath]);
        },
        async stop() {
          await a.proc?.kill();
        },
      };
      agents.push(a);
      stoppers.push(() => a.stop());
      if (o.start !== false) a.start();
      return a;
    };

    const addUser: ConsoleHarness['addUser'] = async (name, role, o = {}) => {
      const password = o.password ?? `${name}-password-0123456789`;
      const r = await api('POST', '/users', { name, role, password, ...(o.selector ? { selector: o.selector } : {}) });
      if (r.status !== 200 && r.status !== 201) throw new Error(`cannot add user ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      return { name, password, role };
    };

    const contexts: BrowserContext[] = [];
    const newPage = async (): Promise<Page> => {
      const ctx = await browser.newContext({ baseURL: server.url, ignoreHTTPSErrors: false, viewport: { width: 1280, height: 900 } });
      contexts.push(ctx);
      // Waits for the page, not a speed check: the console, its server and agents share a loaded machine.
      ctx.setDefaultTimeout(30_000);
      const page = await ctx.newPage();
      watchPage(page, new URL(server.url).origin);
      return page;
    };

    const loginPage = async (user: ConsoleUser): Promise<Page> => {
      const page = await newPage();
      await login(page, user);
      return page;
    };

    const agentJson = async (id: string): Promise<AgentView | undefined> => {
      const r = await api('GET', '/agents?limit=1000');
      return (r.body.agents as AgentView[] | undefined)?.find((a) => a.id === id);
    };

    const h: ConsoleHarness = {
      agent: agentJson,
      server,
      url: server.url,
      dir,
      browser,
      rootd,
      fw,
      agents,
      addRootd,
      addAgent,
      addUser,
      api,
      newPage,
      loginPage,
      stop: stopAll,
    };
    if (opts.admin !== false) await addUser(ADMIN.name, 'admin', { password: ADMIN.password });
    return h;
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Logs in through the console's login form and waits until the form is gone. */
export async function login(page: Page, user: { name: string; password: string }): Promise<void> {
  await page.goto('/');
  await fillLogin(page, user);
  await page.getByTestId('current-user').waitFor();
}

/** Fills and submits the login form; resolves with the status of the server's answer (whatever it is). */
export async function fillLogin(page: Page, user: { name: string; password: string }): Promise<number> {
  await page.getByLabel('User name').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  const [res] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/session' && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Log in' }).click(),
  ]);
  return res.status();
}

/**
 * Calls the operator API from inside the page, as the logged-in user: the session cookie, and the
 * CSRF token from GET /api/v1/session unless `csrf` is false. What the console's own script could do.
 */
export async function pageApi(page: Page, method: string, p: string, body?: unknown, csrf = true): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await page.evaluate(
    async ({ method, p, body, csrf }) => {
      const headers: Record<string, string> = {};
      if (csrf && method !== 'GET') {
        const s = await fetch('/api/v1/session');
        const j = (await s.json()) as { csrf?: string };
        if (j.csrf) headers['x-csrf-token'] = j.csrf;
      }
      if (body !== undefined) headers['content-type'] = 'application/json';
      const r = await fetch(`/api/v1${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, text: await r.text() };
    },
    { method, p, body, csrf },
  );
  return { status: res.status, body: jsonOrRaw(res.text) };
}
