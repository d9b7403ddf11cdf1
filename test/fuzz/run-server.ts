/**
 * Fuzzes a real tuxsec-server over TLS with hand-written HTTP/1.1, so that malformed requests reach
 * it as an attacker would send them: every route and method, mutated paths and bad percent-encodings,
 * schema-aware bodies and mutations of them, bad content types and lengths, with and without
 * credentials, pipelined on one connection or trickled byte by byte.
 *
 * Invariants: no 5xx; nothing but registration answers 2xx without credentials; every error body is
 * the project's `{success: false, error, code}`; nothing hangs; the server never dies.
 */
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { matchPage } from '../../src/protocol/console-routes.ts';
import { startServer, adminCall, SimAgent, type TestServer } from '../helpers/server.ts';
import { rssKiB } from '../helpers/raw.ts';
import type { FuzzReport } from './run-rootd.ts';
import { shortText, type Violation } from './rootd-fuzz.ts';

type Auth = 'none' | 'admin' | 'agent' | 'wrong';

interface HttpCase {
  method: string;
  path: string;
  auth: Auth;
  contentType: string | null;
  body: Buffer | null;
  /** Content-Length sent: the real one, or a lie. */
  lengthDelta: number;
  trickle: boolean;
}

interface Creds {
  admin: string;
  agentId: string;
  apiKey: string;
}

const ROUTES = [
  ['POST', '/agents/api/register/'],
  ['POST', '/agents/api/checkin/'],
  ['POST', '/agents/api/results/'],
  ['POST', '/agents/api/progress/'],
  ['POST', '/api/v1/tokens'],
  ['GET', '/api/v1/agents'],
  ['POST', '/api/v1/agents/AGENT/approve'],
  ['POST', '/api/v1/agents/AGENT/reject'],
  ['POST', '/api/v1/agents'],
  ['POST', '/api/v1/agents/AGENT/mode'],
  ['GET', '/api/v1/agents/AGENT/health'],
  ['POST', '/api/v1/jobs'],
  ['GET', '/api/v1/jobs'],
  ['GET', '/api/v1/jobs/JOB'],
  ['POST', '/api/v1/jobs/JOB/cancel'],
] as const;

const PATH_NOISE = ['%E0%A4%A', '%', '%00', '%ZZ', '..%2F..%2F', '/../../etc/passwd', '?wait=1e999', '?limit=-1', '?status=__proto__', '//', ';', '\u00e9', '%C0%AF', '?x=' + 'a'.repeat(3000), '#frag', '/' + 'b'.repeat(9000)];

function bodyArb(creds: Creds): fc.Arbitrary<unknown> {
  const result = fc.record({
    command_id: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 })),
    success: fc.boolean(),
    output: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant({ prototype: 'zone', constructor: 'x' })),
    error: fc.option(fc.string({ maxLength: 20 })),
  });
  return fc.oneof(
    fc.record({ hostname: fc.oneof(fc.domain(), fc.string({ maxLength: 300 })), ip_address: fc.constant('127.0.0.1'), os_info: fc.jsonValue({ maxDepth: 2 }), enrollment_token: fc.option(fc.string({ maxLength: 40 })) }),
    fc.record({ agent_id: fc.constantFrom(creds.agentId, 'nope', ''), api_key: fc.constantFrom(creds.apiKey, 'wrong'), status: fc.constant('online'), wait: fc.constantFrom(0, 0, 0.05, -1, 1e9), command_results: fc.array(result, { maxLength: 3 }) }),
    fc.record({ agent_id: fc.constantFrom(creds.agentId, 'nope'), module: fc.constantFrom('systeminfo', 'firewalld', 'BAD NAME', '__proto__'), action: fc.constantFrom('get_info', 'x'), params: fc.jsonValue({ maxDepth: 2 }), expires_in: fc.integer() }),
    fc.record({
      agent_id: fc.constantFrom(creds.agentId, 'nope'),
      api_key: fc.constantFrom(creds.apiKey, 'wrong'),
      progress: fc.array(
        fc.record({ command_id: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 })), operation_id: fc.string({ maxLength: 70 }), phase: fc.option(fc.string({ maxLength: 210 })), fraction: fc.option(fc.double()) }),
        { maxLength: 3 },
      ),
    }),
    fc.record({ uses: fc.integer({ min: -5, max: 5 }), ttl: fc.integer({ min: -5, max: 100000 }) }),
    // Adding an agent or changing its mode: files the server would read, hosts ssh would be given.
    fc.record(
      {
        name: fc.constantFrom('fuzz-push', '-x', ''),
        mode: fc.constantFrom('push', 'ssh', 'pull', 'nope'),
        url: fc.constantFrom('https://127.0.0.1:1', 'http://127.0.0.1:1', 'https://a@b:1/x', 'not a url'),
        ca_file: fc.constantFrom('/etc/passwd', '/dev/zero', '/proc/self/fd/0', '/nonexistent', 'relative.pem', '/'),
        api_key: fc.constantFrom('k'.repeat(43), 'short', 'with space in it 0123456789'),
        host: fc.constantFrom('127.0.0.1', '-oProxyCommand=id', 'h\nx'),
        port: fc.integer({ min: -1, max: 70000 }),
        known_host: fc.constantFrom('h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA', 'x\ny ssh-rsa AAAA'),
      },
      { requiredKeys: ['mode'] },
    ),
    fc.jsonValue({ maxDepth: 4 }),
  );
}

export function httpCaseArb(creds: Creds): fc.Arbitrary<HttpCase> {
  const route = fc.constantFrom(...ROUTES).chain(([m, p]) =>
    fc.record({
      method: fc.oneof({ weight: 8, arbitrary: fc.constant(m as string) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'BREW') }),
      path: fc.oneof(
        { weight: 6, arbitrary: fc.constant(p as string) },
        { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...PATH_NOISE), fc.nat()).map(([n, at]) => { const i = at % (p.length + 1); return p.slice(0, i) + n + p.slice(i); }) },
      ),
    }),
  );
  const body = fc.oneof(
    { weight: 5, arbitrary: bodyArb(creds).map((b) => Buffer.from(JSON.stringify(b))) },
    { weight: 2, arbitrary: fc.tuple(bodyArb(creds), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([b, at, ins]) => { const s = Buffer.from(JSON.stringify(b)); const i = at % (s.length + 1); return Buffer.concat([s.subarray(0, i), Buffer.from(ins), s.subarray(i)]); }) },
    { weight: 1, arbitrary: fc.constantFrom(Buffer.from('\xff\xfe{"a":1}', 'latin1'), Buffer.from('{"a":"\\ud800"}'), Buffer.from('['.repeat(5000)), Buffer.alloc(0), Buffer.from('{"a":1e999}'), Buffer.from('{"__proto__":{"admin":true},"agent_id":"x"}'), Buffer.from('{"constructor":{"prototype":{"admin":true}}}')) },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  return fc.record({
    route,
    auth: fc.constantFrom<Auth>('none', 'admin', 'agent', 'wrong'),
    contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/json; charset=latin1', 'multipart/form-data; boundary=x', null),
    body,
    lengthDelta: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -5, max: 5 }) }),
    trickle: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  }).map(({ route: r, ...rest }) => ({ ...rest, method: r.method, path: r.path }));
}

function rawRequest(c: HttpCase, creds: Creds, host: string): Buffer {
  const path = c.path.replace('AGENT', creds.agentId).replace('JOB', '00000000-0000-0000-0000-000000000000');
  const head = [`${c.method} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close'];
  if (c.auth === 'admin') head.push(`Authorization: Bearer ${creds.admin}`);
  if (c.auth === 'agent') head.push(`X-API-Key: ${creds.apiKey}`);
  if (c.auth === 'wrong') head.push('X-API-Key: wrong-key', 'Authorization: Bearer wrong-token-0123456789');
  if (c.contentType !== null && c.body !== null) head.push(`Content-Type: ${c.contentType}`);
  if (c.body !== null) head.push(`Content-Length: ${Math.max(0, c.body.length + c.lengthDelta)}`);
  return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), c.body ?? Buffer.alloc(0)]);
}

interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * Sends one raw request on its own TLS connection; resolves with the status and body, 'closed' when the
 * server closed the connection without an answer, or 'hung' when nothing ended it within `timeoutMs`.
 */
function send(srv: TestServer, ca: Buffer, data: Buffer, trickle: boolean, timeoutMs: number): Promise<HttpAnswer | 'closed' | 'hung'> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost' });
    const chunks: Buffer[] = [];
    let hung = false;
    const timer = setTimeout(() => ((hung = true), s.destroy()), timeoutMs);
    s.on('error', () => {});
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return resolve(hung ? 'hung' : 'closed');
      const i = text.indexOf('\r\n\r\n');
      resolve({ status: Number(m[1]), body: i === -1 ? '' : Buffer.from(text.slice(i + 4), 'latin1').toString('utf8') });
    });
    s.once('secureConnect', async () => {
      if (!trickle) return void s.write(data);
      // A slow client: a few bytes at a time, but never slower than the case's time budget allows.
      for (let i = 0; i < data.length && !s.destroyed; i += 16) {
        s.write(data.subarray(i, i + 16));
        await new Promise((r) => setTimeout(r, 5));
      }
    });
  });
}

/**
 * The web console's page (its index.html, the same for everyone: the data comes from the API after
 * login) answered to a GET of a console path; `/#x/api/v1/jobs` is the page `/` to an HTTP server.
 */
function isConsolePage(c: HttpCase, a: HttpAnswer): boolean {
  if (c.method !== 'GET' && c.method !== 'HEAD') return false;
  let pathname: string;
  try {
    pathname = new URL(c.path, 'https://server.invalid').pathname;
  } catch {
    return false;
  }
  return matchPage(pathname) !== null && (c.method === 'HEAD' || a.body.startsWith('<!doctype html>'));
}

function check(c: HttpCase, a: HttpAnswer | 'closed' | 'hung'): Violation | null {
  const req = `${c.method} ${c.path.slice(0, 120)} (auth ${c.auth}, ${c.body?.length ?? 'no'} body bytes, length ${c.lengthDelta >= 0 ? '+' : ''}${c.lengthDelta})`;
  if (a === 'hung') return { invariant: 'no hang', detail: `nothing ended ${req}` };
  if (a === 'closed') {
    // The server may cut a client that trickles past its timeouts, or that lies about its length
    // (TCP then resets, and the answer can be lost): an honest request always gets an answer.
    if (c.trickle || c.lengthDelta !== 0) return null;
    return { invariant: 'an answer', detail: `no HTTP answer to ${req}` };
  }
  if (a.status >= 500) return { invariant: 'no 5xx', detail: `${a.status} for ${req}: ${a.body.slice(0, 300)}` };
  const isRegister = c.path === '/agents/api/register/' && c.method === 'POST';
  if (a.status < 300 && (c.auth === 'none' || c.auth === 'wrong') && !isRegister && !isConsolePage(c, a)) {
    // Check-ins and results authenticate by body fields too (the Python agent's way); only those may pass.
    const bodyKey = c.body !== null && c.body.includes(Buffer.from('"api_key"'));
    if (!(c.path.startsWith('/agents/api/') && bodyKey)) return { invariant: 'nothing without credentials', detail: `${a.status} for ${req}` };
  }
  if (a.status >= 400 && c.method !== 'HEAD') {
    let b: { success?: unknown; error?: unknown; code?: unknown };
    try {
      b = JSON.parse(a.body);
    } catch {
      return { invariant: 'error shape', detail: `${a.status} body is not JSON for ${req}: ${a.body.slice(0, 200)}` };
    }
    if (b.success !== false || typeof b.error !== 'string' || typeof b.code !== 'string') {
      return { invariant: 'error shape', detail: `${a.status} body ${a.body.slice(0, 200)} for ${req}` };
    }
  }
  return null;
}

export async function fuzzServer(opts: { seed: number; ms: number; workers?: number; log?: (s: string) => void }): Promise<FuzzReport> {
  // Short request timeouts: a case that lies about its Content-Length waits for them.
  const config = { require_enrollment_token: false, log_level: 'warn', header_timeout: 2, request_timeout: 3, register_rate_limit: 600 };
  let srv = await startServer({ config });
  const ca = readFileSync(srv.certs.ca);
  const sim = SimAgent.fromFiles(srv.url, srv.certs.ca);
  await sim.register({ hostname: 'fuzz-agent' });
  await sim.close();
  const creds: Creds = { admin: srv.adminToken, agentId: sim.agentId, apiKey: sim.apiKey };
  if ((await adminCall(srv, 'GET', '/agents')).status !== 200) throw new Error('fuzz setup: operator API not answering');
  const alive = () => srv.proc.exitCode === null && srv.proc.signalCode === null;
  const rssStart = await rssKiB(srv.proc.pid!);
  let rssMax = rssStart;
  const sampler = setInterval(() => {
    if (alive()) void rssKiB(srv.proc.pid!).then((v) => (rssMax = Math.max(rssMax, v)), () => {});
  }, 250);
  let cases = 0;
  let crashes = 0;
  const failures: FuzzReport['failures'] = [];
  const started = Date.now();
  const runOne = async (c: HttpCase): Promise<Violation | null> => {
    const a = await send(srv, ca, rawRequest(c, creds, `127.0.0.1:${srv.port}`), c.trickle, 45_000);
    if (!alive()) {
      crashes++;
      const v = { invariant: 'no crash', detail: `tuxsec-server died: ${srv.log().slice(-2000)}` };
      srv = await startServer({ dir: srv.dir, certs: srv.certs, config });
      return v;
    }
    return check(c, a);
  };
  await Promise.all(
    Array.from({ length: opts.workers ?? 16 }, async (_, w) => {
      const seed = opts.seed + w;
      let first: { v: Violation; c: HttpCase } | null = null;
      const details = await fc.check(
        fc.asyncProperty(httpCaseArb(creds), async (c) => {
          cases++;
          const v = await runOne(c);
          if (v && !first) first = { v, c };
          return v === null;
        }),
        { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: opts.ms, markInterruptAsFailure: false },
      );
      if (details.failed && details.counterexample) {
        const [shrunk] = details.counterexample;
        const again = await runOne(shrunk);
        const f = first as { v: Violation; c: HttpCase } | null;
        // A case that broke an invariant only once (timing) is reported as it first happened.
        const c = again || !f ? shrunk : f.c;
        const v = again ?? (f ? { ...f.v, detail: `${f.v.detail} (did not happen again on the shrunk case: timing)` } : { invariant: 'unknown', detail: 'did not reproduce' });
        const reproducer = JSON.stringify({ ...c, path: shortText(Buffer.from(c.path)), body: c.body ? shortText(c.body) : null });
        failures.push({ seed, violation: v, reproducer, path: details.counterexamplePath });
        opts.log?.(`server fuzz: seed ${seed} broke "${v.invariant}": ${v.detail}\n  minimal case: ${reproducer}`);
      }
    }),
  );
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 2000));
  const rssEnd = alive() ? await rssKiB(srv.proc.pid!) : 0;
  await srv.stop();
  srv.cleanup();
  return { target: 'server', seed: opts.seed, seconds: Math.round((Date.now() - started) / 100) / 10, cases, requests: cases, crashes, failures, rssStartKiB: rssStart, rssMaxKiB: rssMax, rssEndKiB: rssEnd };
}
