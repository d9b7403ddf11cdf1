/**
 * The console's first load (console/src/api.ts): the session check and the first page's data start
 * together (prefetch), the page takes the answer once (api or takePrefetched), and a prefetched 401
 * is not a logout until a page takes it. `fetch` is a stub that counts the requests.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { api, ApiError, dropPrefetched, onLoggedOut, prefetch, takePrefetched } from '../../../console/src/api.ts';

let asked: string[] = [];
let status = 200;
const realFetch = globalThis.fetch;

beforeEach(() => {
  asked = [];
  status = 200;
  dropPrefetched();
  globalThis.fetch = (async (url: string) => {
    asked.push(url);
    return new Response(JSON.stringify(status === 200 ? { n: asked.length } : { error: 'no session', code: 'unauthorized' }), { status });
  }) as typeof fetch;
});

afterEach(() => {
  globalThis.fetch = realFetch;
});

test('a prefetched GET is asked for once and its answer taken once', async () => {
  const p = prefetch('/dashboard');
  assert.equal(prefetch('/dashboard'), p, 'a second prefetch of the same path asks nothing more');
  assert.deepEqual(await api('GET', '/dashboard'), { n: 1 });
  assert.deepEqual(asked, ['/api/v1/dashboard']);
  assert.deepEqual(await api('GET', '/dashboard'), { n: 2 }, 'the next call asks the server again');
  assert.equal(asked.length, 2);
});

test('takePrefetched: nothing before the answer arrived, the answer after, then nothing', async () => {
  const p = prefetch('/agents?limit=100');
  assert.equal(takePrefetched('/agents?limit=100'), undefined);
  await p;
  assert.deepEqual(takePrefetched('/agents?limit=100'), { n: 1 });
  assert.equal(takePrefetched('/agents?limit=100'), undefined);
  assert.equal(takePrefetched('/dashboard'), undefined, 'a path never prefetched');
});

test('dropPrefetched forgets the answers (a login or a logout)', async () => {
  await prefetch('/dashboard');
  dropPrefetched();
  assert.equal(takePrefetched('/dashboard'), undefined);
  await api('GET', '/dashboard');
  assert.equal(asked.length, 2);
});

test('a prefetched 401 logs out only when a page takes it', async () => {
  status = 401;
  let out = 0;
  const off = onLoggedOut(() => out++);
  try {
    await prefetch('/dashboard').catch(() => undefined);
    assert.equal(out, 0, 'the prefetch alone is no logout');
    await assert.rejects(api('GET', '/dashboard'), (e: unknown) => e instanceof ApiError && e.status === 401);
    assert.equal(out, 1);
    await prefetch('/session').catch(() => undefined);
    await assert.rejects(api('GET', '/session'), ApiError);
    assert.equal(out, 1, 'a 401 of the session check is the login page, not a logout');
  } finally {
    off();
  }
});
