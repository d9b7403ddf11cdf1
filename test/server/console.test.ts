/**
 * The web console as a real tuxsec-server serves it over TLS: pages answer index.html (never
 * cached), hashed assets precompressed and cached for good, the security headers on every
 * response (console, API, agent routes, errors), and the API and agent paths not taken over.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { CONSOLE_BUDGET_BYTES } from '../../scripts/build-console.mjs';
import { CONSOLE_PAGES } from '../../src/protocol/console-routes.ts';
import { CONTENT_SECURITY_POLICY, SECURITY_HEADERS } from '../../src/server/console.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const DIST = path.resolve(import.meta.dirname, '../../dist/console');

describe('web console', () => {
  let srv: TestServer;
  let dispatcher: Agent;
  const get = async (p: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' | 'HEAD' = 'GET', body?: string) => {
    const res = await request(`${srv.url}${p}`, { method, headers, dispatcher, body });
    const buf = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body: buf };
  };
  const assertSecure = (h: Record<string, string | string[] | undefined>, what: string): void => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(h[k], v, `${what}: header ${k}`);
  };

  before(async () => {
    srv = await startServer();
    dispatcher = new Agent({ connect: { ca: readFileSync(srv.certs.ca) } });
  });
  after(async () => {
    await dispatcher?.close();
    await srv?.stop();
    srv?.cleanup();
  });

  test('GET / and every page answer index.html with the CSP, never cached', async () => {
    const index = readFileSync(path.join(DIST, 'index.html'));
    const paths = Object.values(CONSOLE_PAGES).map((p) => p.replace(':id', 'some-id-1'));
    for (const p of ['/', ...paths, '/agents/6c0e1c5e-2f7e-4a55-8a53-64d4e1f0b7a1']) {
      const r = await get(p);
      assert.equal(r.status, 200, p);
      assert.match(String(r.headers['content-type']), /^text\/html/, p);
      assert.equal(r.headers['cache-control'], 'no-store', p);
      assert.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY, p);
      assert.deepEqual(r.body, index, p);
      assertSecure(r.headers, p);
    }
    // The CSP is the strict one the issue asks for.
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) assert.ok(CONTENT_SECURITY_POLICY.includes(d), d);
    assert.ok(!CONTENT_SECURITY_POLICY.includes('unsafe'), 'no unsafe-inline or unsafe-eval');
  });

  test('index.html is sent precompressed to a browser that accepts brotli', async () => {
    const r = await get('/agents', { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(r.headers['content-encoding'], 'br');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.deepEqual(brotliDecompressSync(r.body), readFileSync(path.join(DIST, 'index.html')));
  });

  test('hashed assets are cached for good and sent as brotli, gzip or plain as the browser accepts', async () => {
    const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.equal(assets.length, 2, 'one script and one style sheet');
    for (const a of assets) {
      assert.match(a, /\/app-[A-Z0-9]{8}\.(js|css)$/, 'content-hashed name');
      const plain = readFileSync(path.join(DIST, a.replace('/assets/', 'assets/')));
      const br = await get(a, { 'accept-encoding': 'br' });
      assert.equal(br.status, 200, a);
      assert.equal(br.headers['content-encoding'], 'br', a);
      assert.equal(br.headers['cache-control'], 'public, max-age=31536000, immutable', a);
      assert.match(String(br.headers.vary), /accept-encoding/i, a);
      assert.match(String(br.headers['content-type']), a.endsWith('.js') ? /javascript/ : /text\/css/, a);
      assert.deepEqual(brotliDecompressSync(br.body), plain, a);
      assertSecure(br.headers, a);
      const gz = await get(a, { 'accept-encoding': 'gzip' });
      assert.equal(gz.headers['content-encoding'], 'gzip', a);
      assert.deepEqual(gunzipSync(gz.body), plain, a);
      const id = await get(a, { 'accept-encoding': 'identity' });
      assert.equal(id.headers['content-encoding'], undefined, a);
      assert.deepEqual(id.body, plain, a);
    }
    assert.equal((await get('/assets/app-NOTTHERE.js')).status, 404);
  });

  test('index.html has no inline script or style and loads nothing from another origin', () => {
    const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'inline script');
    assert.doesNotMatch(html, /<style|\sstyle=/i, 'inline style');
    assert.doesNotMatch(html, /\bon[a-z]+=/i, 'inline event handler');
    assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//i, 'another origin');
    for (const f of readdirSync(path.join(DIST, 'assets')).filter((n) => /\.(js|css)$/.test(n))) {
      const text = readFileSync(path.join(DIST, 'assets', f), 'utf8');
      assert.doesNotMatch(text, /https?:\/\/(?!www\.w3\.org)[a-z0-9.-]+\.[a-z]{2,}\//i, `${f} names another origin`);
      assert.doesNotMatch(text, /@import|url\(\s*['"]?https?:/i, `${f} imports from another origin`);
    }
  });

  test('the shipped JavaScript and CSS stay under the budget (brotli)', () => {
    let total = 0;
    for (const f of readdirSync(path.join(DIST, 'assets')).filter((n) => /\.(js|css)\.br$/.test(n))) total += statSync(path.join(DIST, 'assets', f)).size;
    assert.ok(total > 1000, `measured ${total} bytes`);
    assert.ok(total <= CONSOLE_BUDGET_BYTES, `${total} bytes compressed, budget ${CONSOLE_BUDGET_BYTES}`);
  });

  test('the API and the agent paths are not taken by the console, and carry the security headers', async () => {
    const api = await get('/api/v1/agents', { accept: 'text/html' });
    assert.equal(api.status, 401);
    assert.match(String(api.headers['content-type']), /application\/json/);
    assertSecure(api.headers, 'API 401');
    const ok = await get('/api/v1/agents', { authorization: `Bearer ${srv.adminToken}` });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body.toString()).success, true);
    assertSecure(ok.headers, 'API 200');
    const missing = await get('/api/v1/no-such-route', { authorization: `Bearer ${srv.adminToken}`, accept: 'text/html' });
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers['content-type']), /application\/json/);
    const checkin = await get('/agents/api/checkin/', { 'content-type': 'application/json' }, 'POST', JSON.stringify({ agent_id: 'x', api_key: 'y' }));
    assert.equal(checkin.status, 401, checkin.body.toString());
    assert.equal(JSON.parse(checkin.body.toString()).success, false);
    assertSecure(checkin.headers, 'agent route');
    // A GET of an agent path is not a page either.
    const agentGet = await get('/agents/api/checkin/');
    assert.equal(agentGet.status, 404);
    assert.match(String(agentGet.headers['content-type']), /application\/json/);
    // Nor is an unknown path, and a not-found answer carries the headers.
    const unknown = await get('/etc/passwd');
    assert.equal(unknown.status, 404);
    assertSecure(unknown.headers, '404');
  });

  test('authenticated API answers and agent answers are never cached (Cache-Control: no-store)', async () => {
    // A shared browser or a proxy must not keep the fleet, the audit log or a session answer for
    // the next person at the keyboard (back button after log-out, disk cache).
    const auth = { authorization: `Bearer ${srv.adminToken}` };
    for (const p of ['/api/v1/agents', '/api/v1/audit', '/api/v1/audit?format=csv', '/api/v1/audit?format=jsonl', '/api/v1/no-such-route']) {
      const r = await get(p, auth);
      assert.equal(r.headers['cache-control'], 'no-store', `${p} (${r.status})`);
    }
    assert.equal((await get('/api/v1/agents')).headers['cache-control'], 'no-store', 'API 401');
    const checkin = await get('/agents/api/checkin/', { 'content-type': 'application/json' }, 'POST', JSON.stringify({ agent_id: 'x', api_key: 'y' }));
    assert.equal(checkin.headers['cache-control'], 'no-store', 'agent route');
    // The hashed assets keep their long cache.
    const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
    const asset = /src="(\/assets\/[^"]+)"/.exec(html)![1]!;
    assert.equal((await get(asset)).headers['cache-control'], 'public, max-age=31536000, immutable', asset);
  });

  test('nothing outside the assets folder can be read through it', async () => {
    for (const p of ['/assets/../index.html', '/assets/%2e%2e/index.html', '/assets/..%2f..%2fserver.yaml', '/assets//etc/passwd', '/assets/.', '/assets/']) {
      const r = await get(p);
      assert.notEqual(r.status, 200, p);
      assert.doesNotMatch(r.body.toString(), /admin_token|<!doctype/i, p);
    }
  });
});
