/**
 * The fleet side of the operator API against a real tuxsec-server process over TLS, its agents
 * speaking the pull protocol by hand (SimAgent): the agent list searched, filtered and paged,
 * agent states, the dashboard, enrollment tokens listed and revoked, batches refused for bad
 * targets and caps, live events (job progress, agent state, heartbeats, limits) and a slow event
 * reader dropped without the server holding its backlog.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as Dispatcher, request } from 'undici';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';
import { openEvents, type SseReader } from '../helpers/sse.ts';

type Agent = { id: string; hostname: string; state: string; status: string; labels: Record<string, string>; mode: string };
type Job = { id: string; agent_id: string; status: string; batch_id: string | null; progress: { phase: string } | null; params?: unknown };
type Batch = { id: string; counts: Record<string, number>; hosts: Array<{ agent_id: string; hostname: string; job: Job }> };

const BUFFER = 256 * 1024;

describe('tuxsec-server fleet API', () => {
  let srv: TestServer;
  let ca: Buffer;
  const sims: SimAgent[] = [];
  const readers: SseReader[] = [];
  const byHost = new Map<string, SimAgent>();
  let registeredAt = 0;

  async function token(body: Record<string, unknown>): Promise<{ id: string; token: string }> {
    const r = await adminCall(srv, 'POST', '/tokens', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return { id: String(r.body.id), token: String(r.body.token) };
  }

  async function enroll(hostname: string, tok: string, extra: Record<string, unknown> = {}): Promise<SimAgent> {
    const a = new SimAgent(srv.url, ca);
    sims.push(a);
    const r = await a.register({ hostname, enrollment_token: tok, ...extra });
    assert.ok(r.status === 200 || r.status === 202, JSON.stringify(r.body));
    byHost.set(hostname, a);
    return a;
  }

  async function agents(query: string): Promise<{ agents: Agent[]; total: number }> {
    const r = await adminCall(srv, 'GET', `/agents${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as { agents: Agent[]; total: number };
  }
  const hosts = (list: Agent[]): string[] => list.map((a) => a.hostname).sort();

  before(async () => {
    srv = await startServer({
      // The slow-reader test floods batches as the admin token to fill an event buffer: no batch rate here.
      config: { sync_interval: 1, long_poll_max: 1, batch_max_hosts: 6, batch_rate_per_operator: 100_000, events_max_streams_per_operator: 3, events_buffer_bytes: BUFFER, log_level: 'info' },
    });
    ca = readFileSync(srv.certs.ca);
    const prodWeb = await token({ uses: 10, name: 'prod web', labels: { env: 'prod', role: 'web' } });
    const devWeb = await token({ uses: 10, labels: { env: 'dev', role: 'web' } });
    const prodDb = await token({ uses: 10, labels: { env: 'prod', role: 'db' } });
    for (let i = 1; i <= 5; i++) await enroll(`web-${i}`, prodWeb.token, { ip_address: `10.0.1.${i}`, os_info: { system: 'Linux', distro: 'debian' } });
    for (let i = 1; i <= 4; i++) await enroll(`dev-web-${i}`, devWeb.token, { ip_address: `10.0.2.${i}`, os_info: { system: 'Linux', distro: 'rocky' } });
    for (let i = 1; i <= 3; i++) await enroll(`db-${i}`, prodDb.token, { ip_address: `10.0.3.${i}`, machine_id: `m-db-${i}` });
    // A second enrollment of db-1's machine waits for approval; one more is rejected.
    await enroll('db-1-again', prodDb.token, { machine_id: 'm-db-1' });
    const rej = await enroll('db-2-again', prodDb.token, { machine_id: 'm-db-2' });
    assert.equal((await adminCall(srv, 'POST', `/agents/${rej.agentId}/reject`, {})).status, 200);
    registeredAt = Date.now();
    const push = await adminCall(srv, 'POST', '/agents', { name: 'push-1', mode: 'push', url: 'https://127.0.0.1:9', ca_file: srv.certs.ca });
    assert.equal(push.status, 201, JSON.stringify(push.body));
  });

  after(async () => {
    for (const r of readers) await r.close();
    await Promise.all(sims.map((a) => a.close()));
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) {
      // An open event stream must not hold the server's shutdown.
      const stream = await openEvents(srv, srv.adminToken);
      const t = Date.now();
      assert.equal(await srv.stop(), 0);
      assert.ok(Date.now() - t < 10_000, 'the server took long to stop with an event stream open');
      await stream.ended;
      await stream.close();
    }
    srv.cleanup();
  });

  test('GET /agents filters by label, search, mode, OS and status, with total', async () => {
    const all = await agents('');
    assert.equal(all.total, 15);
    assert.equal(all.agents.length, 15);
    assert.deepEqual(hosts((await agents('?label=env=prod&label=role=web')).agents), ['web-1', 'web-2', 'web-3', 'web-4', 'web-5']);
    assert.deepEqual(hosts((await agents('?label=role=web&q=dev')).agents), ['dev-web-1', 'dev-web-2', 'dev-web-3', 'dev-web-4']);
    // q matches hostname, id and address; LIKE's wildcards are taken literally.
    assert.deepEqual(hosts((await agents('?q=10.0.3.')).agents), ['db-1', 'db-2', 'db-3']);
    const one = byHost.get('web-3')!.agentId;
    assert.deepEqual(hosts((await agents(`?q=${one}`)).agents), ['web-3']);
    assert.equal((await agents('?q=%25')).total, 0);
    assert.equal((await agents('?q=web_1')).total, 0);
    assert.deepEqual(hosts((await agents('?mode=push')).agents), ['push-1']);
    assert.deepEqual(hosts((await agents('?os=rocky')).agents), ['dev-web-1', 'dev-web-2', 'dev-web-3', 'dev-web-4']);
    assert.deepEqual(hosts((await agents('?state=pending')).agents), ['db-1-again']);
    assert.deepEqual(hosts((await agents('?state=rejected')).agents), ['db-2-again']);
    // Never seen: offline.
    assert.deepEqual(hosts((await agents('?state=offline')).agents), ['push-1']);
    const labelled = (await agents('?label=role=db&state=pending')).agents;
    assert.deepEqual(labelled[0]!.labels, { env: 'prod', role: 'db' });
  });

  test('GET /agents pages with limit and offset: pages join into the whole list, in order, without overlap', async () => {
    const all = (await agents('')).agents.map((a) => a.id);
    const pages: string[] = [];
    for (let off = 0; off < all.length; off += 4) {
      const p = await agents(`?limit=4&offset=${off}`);
      assert.equal(p.total, all.length);
      assert.ok(p.agents.length <= 4);
      pages.push(...p.agents.map((a) => a.id));
    }
    assert.deepEqual(pages, all);
    const filtered = await agents('?label=env=prod&limit=2&offset=6');
    assert.equal(filtered.total, 10);
    assert.equal(filtered.agents.length, 2);
    assert.equal((await agents('?offset=100')).agents.length, 0);
  });

  test('GET /agents refuses bad filters naming them', async () => {
    for (const [q, what] of [
      ['?label=nokey', /label/],
      ['?label==v', /label/],
      ['?state=sleeping', /state/],
      ['?limit=0', /limit/],
      ['?limit=1001', /limit/],
      ['?offset=-1', /offset/],
      ['?colour=red', /additional/],
    ] as const) {
      const r = await adminCall(srv, 'GET', `/agents${q}`);
      assert.equal(r.status, 400, `${q}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'invalid-request');
      assert.match(String(r.body.error), what, q);
    }
  });

  test('GET /tokens lists names, labels and uses, never a secret; DELETE revokes so it no longer enrolls', async () => {
    const t = await token({ uses: 2, ttl: 600, name: 'to revoke', labels: { env: 'lab' } });
    const list = await adminCall(srv, 'GET', '/tokens');
    assert.equal(list.status, 200);
    const text = JSON.stringify(list.body);
    assert.ok(!text.includes(t.token), 'a token secret is listed');
    assert.doesNotMatch(text, /"hash"/);
    const mine = (list.body.tokens as Array<Record<string, unknown>>).find((x) => x.id === t.id)!;
    assert.deepEqual({ name: mine.name, labels: mine.labels, uses: mine.uses, uses_left: mine.uses_left, expired: mine.expired }, { name: 'to revoke', labels: { env: 'lab' }, uses: 2, uses_left: 2, expired: false });
    const prodWeb = (list.body.tokens as Array<Record<string, unknown>>).find((x) => x.name === 'prod web')!;
    assert.equal(prodWeb.uses_left, 5);
    const del = await adminCall(srv, 'DELETE', `/tokens/${t.id}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    const again = await adminCall(srv, 'DELETE', `/tokens/${t.id}`);
    assert.equal(again.status, 404);
    assert.match(String(again.body.error), /cannot revoke token ".*": no such token/);
    const late = new SimAgent(srv.url, ca);
    sims.push(late);
    const r = await late.register({ hostname: 'late', enrollment_token: t.token });
    assert.equal(r.status, 401);
    assert.equal(r.body.code, 'invalid-token');
    // The CLI: token list and revoke.
    const t2 = await token({ uses: 1, name: 'cli token' });
    const cliList = await srv.cli(['token', 'list']);
    assert.equal(cliList.code, 0, cliList.stderr);
    assert.match(cliList.stdout, new RegExp(`${t2.id}\\s+cli token\\s+1/1`));
    assert.ok(!cliList.stdout.includes(t2.token));
    const cliRevoke = await srv.cli(['token', 'revoke', t2.id]);
    assert.equal(cliRevoke.code, 0, cliRevoke.stderr);
    assert.doesNotMatch((await srv.cli(['token', 'list'])).stdout, new RegExp(t2.id));
  });

  test('POST /batches refuses bad targets and caps without creating any job', async () => {
    const before = ((await adminCall(srv, 'GET', '/jobs?limit=1000')).body.jobs as unknown[]).length;
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ target: { agents: [byHost.get('web-1')!.agentId, 'no-such-agent'] }, module: 'systeminfo', action: 'get_info' }, 404, /agent "no-such-agent": no such agent/],
      [{ target: { label: { role: 'nothing' } }, module: 'systeminfo', action: 'get_info' }, 404, /no approved agent you can reach has label role=nothing/],
      [{ target: { label: { env: 'prod' } }, module: 'systeminfo', action: 'get_info' }, 400, /matches more than 6 hosts \(batch_max_hosts\)/],
      [{ target: { agents: [byHost.get('db-2-again')!.agentId] }, module: 'systeminfo', action: 'get_info' }, 409, /was rejected/],
      [{ target: {}, module: 'systeminfo', action: 'get_info' }, 400, /give target.agents or target.label/],
      [{ target: { label: {} }, module: 'systeminfo', action: 'get_info' }, 400, /target.label is empty/],
      [{ target: { label: { role: 'web' }, agents: [byHost.get('web-1')!.agentId] }, module: 'systeminfo', action: 'get_info' }, 400, /one of them/],
      [{ target: { label: { role: 'web' } }, module: 'systeminfo', action: 'get_info', params: { big: 'x'.repeat(70_000) } }, 413, /params are \d+ bytes as JSON, at most 65536/],
      [{ target: { label: { 'bad key!': 'x' } }, module: 'systeminfo', action: 'get_info' }, 400, /label/],
      [{ target: { label: { role: 'web' } }, module: 'Bad-Module', action: 'get_info' }, 400, /module/],
    ];
    for (const [body, status, msg] of cases) {
      const r = await adminCall(srv, 'POST', '/batches', body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.error), msg);
    }
    assert.equal(((await adminCall(srv, 'GET', '/jobs?limit=1000')).body.jobs as unknown[]).length, before);
  });

  test('a label batch queues one job per approved host; cancel ends the queued ones, retry-failed queues only those again', async () => {
    const r = await adminCall(srv, 'POST', '/batches', { target: { label: { env: 'prod', role: 'web' } }, module: 'systeminfo', action: 'get_hostname', params: { x: 1 } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const b = r.body.batch as Batch;
    assert.deepEqual(b.hosts.map((h) => h.hostname).sort(), ['web-1', 'web-2', 'web-3', 'web-4', 'web-5']);
    assert.equal(b.counts.queued, 5);
    assert.ok(b.hosts.every((h) => h.job.batch_id === b.id && h.job.status === 'queued'));
    // Two hosts take their job and one reports a result; the others stay queued.
    const w1 = byHost.get('web-1')!;
    const w2 = byHost.get('web-2')!;
    const c1 = await w1.checkin();
    const mine = (c1.body.commands as Array<{ id: string }>).map((c) => c.id);
    assert.deepEqual(mine, [b.hosts.find((h) => h.agent_id === w1.agentId)!.job.id]);
    assert.equal((await w1.results([{ command_id: mine[0], success: true, status: 'completed', output: { hostname: 'web-1' } }])).status, 200);
    await w2.checkin();
    const cancel = await adminCall(srv, 'POST', `/batches/${b.id}/cancel`, {});
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.equal((cancel.body.cancelled as string[]).length, 3);
    assert.equal((cancel.body.cancel_requested as string[]).length, 1);
    const after = cancel.body.batch as Batch;
    assert.equal(after.counts.completed, 1);
    assert.equal(after.counts.cancelled, 3);
    assert.equal(after.counts.sent, 1);
    assert.ok(after.hosts.find((h) => h.agent_id === w2.agentId)!.job.status === 'sent');
    // Retry: only the three cancelled hosts; web-1 (completed) and web-2 (still sent) are left alone.
    const retry = await adminCall(srv, 'POST', `/batches/${b.id}/retry-failed`, {});
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    const retried = new Set(retry.body.retried as string[]);
    assert.deepEqual([...retried].sort(), ['web-3', 'web-4', 'web-5'].map((h) => byHost.get(h)!.agentId).sort());
    const rb = retry.body.batch as Batch;
    assert.equal(rb.counts.queued, 3);
    assert.equal(rb.counts.total, 5);
    assert.equal(rb.hosts.find((h) => h.agent_id === w1.agentId)!.job.status, 'completed');
    const second = await adminCall(srv, 'POST', `/batches/${b.id}/retry-failed`, {});
    assert.deepEqual(second.body.retried, []);
    // The list shows it with its counts.
    const list = await adminCall(srv, 'GET', '/batches');
    const listed = (list.body.batches as Batch[]).find((x) => x.id === b.id)!;
    assert.equal(listed.counts.queued, 3);
    assert.equal((await adminCall(srv, 'GET', '/batches/nope')).status, 404);
  });

  test('attack: an operator limited to env=dev never learns the ids or count of the prod hosts of a mixed batch', async () => {
    const pw = 'correct horse battery staple';
    assert.equal((await adminCall(srv, 'POST', '/users', { name: 'devop', role: 'operator', selector: { env: 'dev' }, password: pw })).status, 201);
    const prod = byHost.get('web-1')!.agentId;
    const dev = byHost.get('dev-web-1')!.agentId;
    const b = await adminCall(srv, 'POST', '/batches', { target: { agents: [prod, dev] }, module: 'systeminfo', action: 'get_info' });
    assert.equal(b.status, 201, JSON.stringify(b.body));
    const id = (b.body.batch as { id: string }).id;
    const d = new Dispatcher({ connect: { ca } });
    try {
      const login = await request(`${srv.url}/api/v1/session`, { method: 'POST', dispatcher: d, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'devop', password: pw }) });
      assert.equal(login.statusCode, 200);
      await login.body.text();
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const get = async (p: string) => {
        const r = await request(`${srv.url}/api/v1${p}`, { dispatcher: d, headers: { cookie } });
        return { status: r.statusCode, text: await r.body.text() };
      };
      const one = await get(`/batches/${id}`);
      assert.equal(one.status, 200, one.text);
      assert.ok(one.text.includes(dev), 'the reachable host is shown');
      assert.ok(!one.text.includes(prod), `the unreachable host's id leaks: ${one.text}`);
      const list = await get('/batches?limit=100');
      assert.equal(list.status, 200, list.text);
      const mine = (JSON.parse(list.text) as { batches: Array<{ id: string; target: { agents_count?: number } }> }).batches.find((x) => x.id === id)!;
      assert.deepEqual(mine.target, { agents_count: 1 });
    } finally {
      await d.close();
      await adminCall(srv, 'POST', `/batches/${id}/cancel`, {});
    }
  });

  test('the command line: agents list with filters, jobs submit --label, jobs batch get and list, in words', async () => {
    const list = await srv.cli(['agents', 'list', '--label', 'role=db', '--search', 'again']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /STATE\s+LABELS/);
    assert.match(list.stdout, /db-2-again .*\brejected\s+env=prod,role=db/);
    assert.equal(list.stdout.trim().split('\n').length, 3, list.stdout);
    const sub = await srv.cli(['jobs', 'submit', '--label', 'env=dev', 'systeminfo', 'get_hostname', '--params', '{"x": 1}']);
    assert.equal(sub.code, 0, sub.stderr);
    assert.match(sub.stdout, /^batch \S+: systeminfo get_hostname for label env=dev, 4 host\(s\): queued 4$/m);
    for (let i = 1; i <= 4; i++) assert.match(sub.stdout, new RegExp(`${byHost.get(`dev-web-${i}`)!.agentId}\\s+dev-web-${i}\\s+queued`));
    const id = /^batch (\S+):/m.exec(sub.stdout)![1]!;
    const get = await srv.cli(['jobs', 'batch', 'get', id, '--json']);
    assert.deepEqual((JSON.parse(get.stdout) as { batch: Batch }).batch.hosts[0]!.job.params, { x: 1 });
    const batches = await srv.cli(['jobs', 'batch', 'list']);
    assert.match(batches.stdout, new RegExp(`${id} .* systeminfo\\s+get_hostname\\s+4\\s+queued 4`));
    const bad = await srv.cli(['jobs', 'submit', '--label', 'env=dev', '--agent', 'x', 'systeminfo', 'get_hostname']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /give --label or --agent, not both/);
    const three = await srv.cli(['jobs', 'submit', '--label', 'env=dev', 'x', 'systeminfo', 'get_hostname']);
    assert.match(three.stderr, /expected MODULE ACTION after --label/);
    const badLabel = await srv.cli(['jobs', 'submit', '--label', 'env', 'systeminfo', 'get_hostname']);
    assert.match(badLabel.stderr, /cannot use --label: invalid label "env": expected KEY=VALUE/);
    await adminCall(srv, 'POST', `/batches/${id}/cancel`, {});
  });

  test('GET /dashboard counts agents by state and shows recent jobs and failures', async () => {
    const d = await adminCall(srv, 'GET', '/dashboard');
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const c = d.body.agents as { online: number; stale: number; offline: number; pending: number; rejected: number; total: number };
    assert.equal(c.total, 15);
    assert.equal(c.pending, 1);
    assert.equal(c.rejected, 1);
    assert.equal(c.online + c.stale + c.offline, 13);
    assert.ok((d.body.recent_jobs as Job[]).length > 0 && (d.body.recent_jobs as Job[]).length <= 10);
    assert.ok((d.body.recent_failures as Job[]).every((j) => ['failed', 'expired', 'interrupted', 'delivered-without-result'].includes(j.status)));
    assert.deepEqual(d.body.drifted, []);
  });

  test('events: job progress and results, agent state changes; per-operator limit', async () => {
    const ev = await openEvents(srv, srv.adminToken);
    readers.push(ev);
    assert.equal(ev.status, 200);
    assert.match(String(ev.headers['content-type']), /^text\/event-stream/);
    const a = byHost.get('dev-web-1')!;
    const sub = await adminCall(srv, 'POST', '/jobs', { agent_id: a.agentId, module: 'aide', action: 'check', params: {} });
    const id = (sub.body.job as Job).id;
    await ev.waitFor('queued', (e) => e.event === 'job' && (e.data as Job).id === id && (e.data as Job).status === 'queued');
    await a.checkin();
    await ev.waitFor('sent', (e) => e.event === 'job' && (e.data as Job).id === id && (e.data as Job).status === 'sent');
    await a.post('/agents/api/progress/', { agent_id: a.agentId, api_key: a.apiKey, progress: [{ command_id: id, operation_id: 'op-1', phase: 'hashing', fraction: 0.4 }] }, { 'x-api-key': a.apiKey });
    const p = await ev.waitFor('progress', (e) => e.event === 'job' && (e.data as Job).id === id && (e.data as Job).status === 'running');
    assert.equal((p.data as Job).progress!.phase, 'hashing');
    await a.results([{ command_id: id, success: false, status: 'failed', error: 'boom' }]);
    await ev.waitFor('failed', (e) => e.event === 'job' && (e.data as Job).id === id && (e.data as Job).status === 'failed');
    // Agent states: everyone but dev-web-1 went quiet long ago (online is 3 s here).
    const wait = registeredAt + 4000 - Date.now();
    if (wait > 0) await sleep(wait);
    await ev.waitFor('a stale agent', (e) => e.event === 'agent' && (e.data as { state: string }).state === 'stale', 12_000);
    const quiet = byHost.get('db-3')!;
    await quiet.checkin();
    const back = await ev.waitFor('db-3 online', (e) => e.event === 'agent' && (e.data as { id: string }).id === quiet.agentId && (e.data as { state: string }).state === 'online');
    assert.ok((back.data as { last_seen: string }).last_seen);
    // The filter reads last_seen as written (in batches, every 2 s), and online lasts 3 s from a
    // check-in: db-3 goes on checking in, as a live agent would, so a slow loop here cannot look
    // only in the second between the write and the end of that window.
    let live = true;
    const alive = (async () => {
      while (live) {
        await quiet.checkin();
        await sleep(300);
      }
    })();
    let online = await agents('?state=online');
    try {
      for (let i = 0; i < 50 && !online.agents.some((x) => x.id === quiet.agentId); i++) {
        await sleep(200);
        online = await agents('?state=online');
      }
    } finally {
      live = false;
      await alive;
    }
    assert.ok(online.agents.some((x) => x.id === quiet.agentId), JSON.stringify(online));
    assert.ok(!online.agents.some((x) => x.hostname === 'web-5'));
    // Approve: the pending agent's state changes, announced at once.
    const pending = byHost.get('db-1-again')!;
    await adminCall(srv, 'POST', `/agents/${pending.agentId}/approve`, {});
    await ev.waitFor('approved agent', (e) => e.event === 'agent' && (e.data as { id: string }).id === pending.agentId && (e.data as { state: string }).state !== 'pending');
    // At most 3 streams for one operator (this config): the fourth is refused, the third is fine.
    const more = [await openEvents(srv, srv.adminToken), await openEvents(srv, srv.adminToken)];
    readers.push(...more);
    assert.ok(more.every((m) => m.status === 200));
    const fourth = await openEvents(srv, srv.adminToken);
    readers.push(fourth);
    assert.equal(fourth.status, 429);
    await fourth.ended;
    assert.match(String((fourth.events[0]!.data as { error: string }).error), /already holds 3 \(at most 3\)/);
    for (const m of more) await m.close();
    await ev.close();
    // Closed streams are counted out again.
    const again = await (async () => {
      for (let i = 0; i < 50; i++) {
        const r = await openEvents(srv, srv.adminToken);
        if (r.status === 200) return r;
        await r.close();
        await sleep(100);
      }
      throw new Error('closed streams still counted');
    })();
    readers.push(again);
    await again.close();
    const noToken = await openEvents(srv, 'wrong-token-0123456789abcdef');
    assert.equal(noToken.status, 401);
    await noToken.close();
  });

  test('a slow event reader is dropped once it falls behind by the buffer limit; the server goes on', async () => {
    // A reader that sends its request and then never reads.
    const sock = tls.connect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write(`GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${srv.adminToken}\r\n\r\n`);
    const head = await new Promise<string>((resolve) => sock.once('data', (c: Buffer) => resolve(c.toString())));
    assert.match(head, /^HTTP\/1\.1 200/);
    sock.pause();
    let closed = false;
    sock.once('close', () => (closed = true));
    // Big job events, many times what the buffer and the kernel's socket buffers hold.
    const web = ['dev-web-1', 'dev-web-2', 'dev-web-3', 'dev-web-4'].map((h) => byHost.get(h)!.agentId);
    const big = 'y'.repeat(14_000);
    const logBefore = srv.log().length;
    for (let i = 0; i < 400 && !/events stream dropped/.test(srv.log().slice(logBefore)); i++) {
      const r = await adminCall(srv, 'POST', '/batches', { target: { agents: web }, module: 'systeminfo', action: 'get_hostname', params: { big, i } });
      assert.equal(r.status, 201, JSON.stringify(r.body).slice(0, 300));
    }
    const line = srv.log().slice(logBefore).split('\n').find((l) => l.includes('events stream dropped'));
    assert.ok(line, 'the slow reader was never dropped');
    const rec = JSON.parse(line) as { buffered: number; msg: string };
    assert.ok(rec.buffered <= BUFFER, `the server held ${rec.buffered} bytes for one reader, more than ${BUFFER}`);
    assert.match(rec.msg, /fell behind by more than 262144 bytes/);
    sock.resume();
    sock.on('data', () => undefined);
    for (let i = 0; i < 100 && !closed; i++) await sleep(50);
    assert.ok(closed, 'the dropped stream\'s connection is still open');
    // The server still answers, and a fresh reader gets events.
    const ev = await openEvents(srv, srv.adminToken);
    readers.push(ev);
    assert.equal(ev.status, 200);
    const r = await adminCall(srv, 'POST', '/batches', { target: { agents: web.slice(0, 1) }, module: 'systeminfo', action: 'get_hostname' });
    const jobId = (r.body.batch as Batch).hosts[0]!.job.id;
    await ev.waitFor('the new job', (e) => e.event === 'job' && (e.data as Job).id === jobId);
    // A burst bigger than a quarter of the buffer comes as one batch event, and the reader stays.
    // Six hosts (batch_max_hosts here) with 14 kB params: 90 kB of events at once.
    const six = [...byHost.entries()].filter(([h]) => /^(dev-)?web-\d$/.test(h)).map(([, a]) => a.agentId).slice(0, 6);
    assert.equal(six.length, 6);
    const burst = await adminCall(srv, 'POST', '/batches', { target: { agents: six }, module: 'systeminfo', action: 'get_hostname', params: { big: 'z'.repeat(14_000) } });
    assert.equal(burst.status, 201, JSON.stringify(burst.body).slice(0, 300));
    const burstId = (burst.body.batch as Batch).id;
    await ev.waitFor('the batch event', (e) => e.event === 'batch' && (e.data as { id: string }).id === burstId);
    assert.ok(!ev.events.some((e) => e.event === 'job' && (e.data as Job).batch_id === burstId), 'the burst came job by job');
    // A job whose event would be huge comes without params and result.
    const huge = await adminCall(srv, 'POST', '/jobs', { agent_id: six[0], module: 'systeminfo', action: 'get_hostname', params: { big: 'h'.repeat(40_000) } });
    const hugeId = (huge.body.job as Job).id;
    const he = await ev.waitFor('the huge job', (e) => e.event === 'job' && (e.data as Job).id === hugeId);
    assert.deepEqual([(he.data as Record<string, unknown>).params, (he.data as Record<string, unknown>).truncated], [null, true]);
    let alive = false;
    const check = await adminCall(srv, 'POST', '/jobs', { agent_id: six[1], module: 'systeminfo', action: 'get_hostname' });
    await ev.waitFor('a job after the burst', (e) => e.event === 'job' && (e.data as Job).id === (check.body.job as Job).id).then(() => (alive = true));
    assert.ok(alive);
    await ev.close();
  });
});

describe('tuxsec-server events stream and the request timeouts', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ config: { header_timeout: 1, request_timeout: 2, require_enrollment_token: false } });
  });
  after(async () => {
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
    srv.cleanup();
  });

  test('a stream outlives request_timeout and header_timeout: they bound receiving the request, not the reply', async () => {
    const ev = await openEvents(srv, srv.adminToken);
    try {
      assert.equal(ev.status, 200);
      await sleep(5000);
      const a = new SimAgent(srv.url, readFileSync(srv.certs.ca));
      try {
        assert.equal((await a.register({ hostname: 'late' })).status, 200);
        await ev.waitFor('the new agent', (e) => e.event === 'agent' && (e.data as { id: string }).id === a.agentId, 5000);
      } finally {
        await a.close();
      }
    } finally {
      await ev.close();
    }
  });
});

describe('tuxsec-server fleet API: batch storage cap and per-operator batch rate', () => {
  const PW = 'correct horse battery staple';
  let srv: TestServer;
  let ca: Buffer;
  const sims: SimAgent[] = [];
  const ids: string[] = [];
  const dispatchers: Dispatcher[] = [];

  /** Logs a user in; returns a call as that user (session cookie and CSRF token). */
  async function session(name: string): Promise<(method: 'GET' | 'POST', p: string, body?: unknown) => Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }>> {
    assert.equal((await adminCall(srv, 'POST', '/users', { name, role: 'operator', password: PW })).status, 201);
    const d = new Dispatcher({ connect: { ca } });
    dispatchers.push(d);
    const login = await request(`${srv.url}/api/v1/session`, { method: 'POST', dispatcher: d, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: PW }) });
    assert.equal(login.statusCode, 200);
    const csrf = String(((await login.body.json()) as { csrf: string }).csrf);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    return async (method, p, body) => {
      const r = await request(`${srv.url}/api/v1${p}`, {
        method,
        dispatcher: d,
        headers: { cookie, 'x-csrf-token': csrf, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.statusCode, headers: r.headers, body: (await r.body.json()) as Record<string, unknown> };
    };
  }

  const jobCount = async (): Promise<number> => ((await adminCall(srv, 'GET', '/jobs?limit=1000')).body.jobs as unknown[]).length;

  before(async () => {
    srv = await startServer({ config: { batch_max_total_bytes: 8192, batch_rate_per_operator: 3 } });
    ca = readFileSync(srv.certs.ca);
    const tok = await adminCall(srv, 'POST', '/tokens', { uses: 10, labels: { role: 'web' } });
    for (let i = 1; i <= 4; i++) {
      const a = new SimAgent(srv.url, ca);
      sims.push(a);
      const r = await a.register({ hostname: `rate-${i}`, enrollment_token: tok.body.token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      ids.push(a.agentId);
    }
  });
  after(async () => {
    await Promise.all(dispatchers.map((d) => d.close()));
    await Promise.all(sims.map((a) => a.close()));
    await srv.stop();
    srv.cleanup();
  });

  test('attack: a batch whose hosts × params exceed batch_max_total_bytes is refused naming the sizes and the setting, before anything is stored', async () => {
    const before = await jobCount();
    // 3000 bytes of params is far below batch_max_params_bytes; 4 copies of it are not below 8192.
    const params = { blob: 'x'.repeat(3000) };
    const r = await adminCall(srv, 'POST', '/batches', { target: { label: { role: 'web' } }, module: 'systeminfo', action: 'get_info', params });
    assert.equal(r.status, 413, JSON.stringify(r.body).slice(0, 300));
    assert.equal(r.body.code, 'message-too-large');
    assert.match(String(r.body.error), /cannot create batch: 4 hosts × 3011 bytes of params = 12044 bytes to store, at most 8192 \(batch_max_total_bytes\)/);
    assert.equal(await jobCount(), before, 'no job stored');
    // Two hosts of the same params fit.
    const ok = await adminCall(srv, 'POST', '/batches', { target: { agents: ids.slice(0, 2) }, module: 'systeminfo', action: 'get_info', params });
    assert.equal(ok.status, 201, JSON.stringify(ok.body).slice(0, 300));
    assert.equal(await jobCount(), before + 2);
  });

  test('attack: one operator creating batches as fast as it can is held to batch_rate_per_operator; another operator is unaffected', async () => {
    const alice = await session('alice');
    const bob = await session('bob');
    const body = { target: { agents: [ids[0]] }, module: 'systeminfo', action: 'get_hostname' };
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await alice('POST', '/batches', body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      made.push((r.body.batch as { id: string }).id);
    }
    const before = await jobCount();
    const refused = await alice('POST', '/batches', body);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'rate-limited');
    assert.match(String(refused.body.error), /cannot create batch: user "alice" created more than 3 batches a minute \(batch_rate_per_operator\); retry in \d+ s/);
    assert.ok(Number(refused.headers['retry-after']) >= 1, `Retry-After ${String(refused.headers['retry-after'])}`);
    // retry-failed queues new jobs, so it takes a token too: alice's cancelled batch is not queued again.
    assert.equal((await alice('POST', `/batches/${made[0]}/cancel`, {})).status, 200);
    const retry = await alice('POST', `/batches/${made[0]}/retry-failed`, {});
    assert.equal(retry.status, 429, JSON.stringify(retry.body));
    assert.match(String(retry.body.error), /cannot retry batch ".*": user "alice" created more than 3 batches a minute/);
    assert.equal(await jobCount(), before, 'nothing stored for the refused requests');
    // Bob has his own budget, and so has the admin token.
    for (let i = 0; i < 3; i++) assert.equal((await bob('POST', '/batches', body)).status, 201);
    assert.equal((await adminCall(srv, 'POST', '/batches', body)).status, 201);
    // The refusals are in the audit log.
    const audit = (await adminCall(srv, 'GET', '/audit?actor=alice')).body.entries as Array<{ action: string; result: string }>;
    assert.ok(audit.some((e) => e.action === 'batch.create' && /batch_rate_per_operator/.test(e.result)), JSON.stringify(audit).slice(0, 500));
  });
});
