/**
 * Firewall templates and drift on the real tuxsec-server over TLS, with simulated pull agents (the
 * wire protocol only; test/agent/templates.test.ts runs real agents, rootd and firewalld): CRUD
 * with every refusal naming what was wrong, preview and apply as one firewalld apply_zone_settings
 * job per host of a target, the drift record fed by the hash jobs' results, and the command line.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

const ZONES = { public: { services: ['https'], ports: ['8443/tcp'] }, internal: { rich_rules: ['rule family="ipv4" source address="10.0.0.0/8" service name="ssh" accept'] } };
const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

describe('firewall templates and drift (server, simulated agents)', () => {
  let srv: TestServer;
  const agents: SimAgent[] = [];
  let web1: SimAgent;
  let web2: SimAgent;
  let db1: SimAgent;

  async function enrolled(labels: Record<string, string>, machine: string): Promise<SimAgent> {
    const tok = await adminCall(srv, 'POST', '/tokens', { labels });
    const a = new SimAgent(srv.url, readFileSync(srv.certs.ca));
    agents.push(a);
    const r = await a.register({ enrollment_token: tok.body.token, machine_id: machine, hostname: machine });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return a;
  }

  /** Takes the agent's queued jobs and answers each with `answer(job)`. */
  async function serve(
    a: SimAgent,
    answer: (c: { id: string; module: string; action: string; params: Record<string, unknown> }) => Record<string, unknown>,
    wait = 0,
  ): Promise<Array<{ id: string; action: string; params: Record<string, unknown> }>> {
    const r = await a.checkin({ features: ['long-poll', 'results', 'redelivery'], ...(wait ? { wait } : {}) });
    const cmds = r.body.commands as Array<{ id: string; module: string; action: string; params: Record<string, unknown> }>;
    if (cmds.length) await a.results(cmds.map((c) => ({ command_id: c.id, status: 'completed', success: true, output: answer(c) })));
    return cmds;
  }

  before(async () => {
    srv = await startServer();
    web1 = await enrolled({ role: 'web' }, 'web1');
    web2 = await enrolled({ role: 'web' }, 'web2');
    db1 = await enrolled({ role: 'db' }, 'db1');
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await srv.stop();
    srv.cleanup();
  });

  let templateId = '';

  test('templates are created, listed, shown, replaced and deleted by id; bad ones are refused naming what is wrong', async () => {
    const c = await adminCall(srv, 'POST', '/templates', { name: 'web', description: 'web servers', zones: ZONES });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const t = c.body.template as { id: string; name: string; zones: unknown; created_at: string };
    templateId = t.id;
    assert.deepEqual(t.zones, ZONES);
    assert.equal((await adminCall(srv, 'POST', '/templates', { name: 'web', zones: ZONES })).status, 409);
    const list = await adminCall(srv, 'GET', '/templates');
    assert.deepEqual((list.body.templates as Array<{ name: string }>).map((x) => x.name), ['web']);
    assert.deepEqual((await adminCall(srv, 'GET', `/templates/${t.id}`)).body.template, t);

    const bad: Array<[unknown, RegExp]> = [
      [{ name: 'x', zones: { public: { services: ['http; reboot'] } } }, /services\/0|pattern/],
      [{ name: 'x', zones: { 'public --panic-on': { services: ['http'] } } }, /zones/],
      [{ name: 'x', zones: { public: { services: ['http'], masquerade: true } } }, /masquerade|additional/],
      [{ name: 'x', zones: {} }, /zones/],
      [{ name: '', zones: ZONES }, /name/],
      [{ name: 'x', zones: ZONES, extra: 1 }, /extra|additional/],
      [{ name: 'x', zones: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`z${i}`, { ports: Array.from({ length: 128 }, (_, j) => `${1000 + i * 128 + j}/tcp`) }])) }, /640 services, ports and rich rules; at most 512/],
    ];
    for (const [body, re] of bad) {
      const r = await adminCall(srv, 'POST', '/templates', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(String(r.body.error), re);
    }
    assert.equal(((await adminCall(srv, 'GET', '/templates')).body.templates as unknown[]).length, 1, 'nothing created by a refused request');

    const other = await adminCall(srv, 'POST', '/templates', { name: 'tmp', zones: { public: { services: ['ssh'] } } });
    const id2 = (other.body.template as { id: string }).id;
    assert.equal((await adminCall(srv, 'PUT', `/templates/${id2}`, { name: 'web', zones: ZONES })).status, 409, 'a replace may not take another template\'s name');
    const put = await adminCall(srv, 'PUT', `/templates/${id2}`, { name: 'tmp2', description: 'd', zones: { work: { ports: ['1/udp'] } } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual((put.body.template as { zones: unknown }).zones, { work: { ports: ['1/udp'] } });
    assert.equal((await adminCall(srv, 'DELETE', `/templates/${id2}`)).status, 200);
    assert.equal((await adminCall(srv, 'DELETE', `/templates/${id2}`)).status, 404);
    assert.equal((await adminCall(srv, 'GET', `/templates/${id2}`)).status, 404);
    assert.equal((await adminCall(srv, 'PUT', `/templates/${id2}`, { name: 'z', zones: ZONES })).status, 404);
  });

  test('preview queues one dry-run apply_zone_settings job per host of a label; apply one with confirm_timeout per named host', async () => {
    const p = await adminCall(srv, 'POST', `/templates/${templateId}/preview`, { target: { label: { role: 'web' } } });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const batch = p.body.batch as { id: string; module: string; action: string; hosts: Array<{ agent_id: string; hostname: string; job: { id: string } }> };
    assert.deepEqual([batch.module, batch.action], ['firewalld', 'apply_zone_settings']);
    assert.deepEqual(batch.hosts.map((h) => h.hostname).sort(), ['web1', 'web2']);
    for (const h of batch.hosts) {
      const job = (await adminCall(srv, 'GET', `/jobs/${h.job.id}`)).body.job as { agent_id: string; module: string; action: string; params: unknown; batch_id: string };
      assert.deepEqual([job.agent_id, job.module, job.action, job.params, job.batch_id], [h.agent_id, 'firewalld', 'apply_zone_settings', { zones: ZONES, dry_run: true }, batch.id]);
    }
    // The db host got nothing.
    assert.deepEqual(await serve(db1, () => ({})), []);
    const taken = await serve(web1, (c) => ({ changed: true, action: 'x', dry_run: true, items: [], params: c.params }));
    assert.equal(taken.length, 1);

    const a = await adminCall(srv, 'POST', `/templates/${templateId}/apply`, { target: { agents: [db1.agentId] }, confirm_timeout: 60, permanent: true });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const [aj] = (a.body.batch as { hosts: Array<{ job: { id: string; params: unknown } }> }).hosts;
    assert.deepEqual(aj!.job.params, { zones: ZONES, permanent: true, confirm_timeout: 60 });
    await serve(db1, () => ({ changed: true, action: 'x', change_id: '0123456789abcdef', confirm_by: new Date().toISOString(), items: [] }));
    await serve(web2, () => ({ changed: true, dry_run: true, items: [] }));
  });

  test('bad targets are refused naming why, and queue nothing', async () => {
    const before = ((await adminCall(srv, 'GET', '/jobs')).body.jobs as unknown[]).length;
    const cases: Array<[string, unknown, number, RegExp]> = [
      [`/templates/${templateId}/apply`, { target: {} }, 400, /give target.agents or target.label/],
      [`/templates/${templateId}/apply`, { target: { label: { role: 'nothing' } } }, 404, /no approved agent you can reach has label role=nothing/],
      [`/templates/${templateId}/apply`, { target: { agents: [web1.agentId, 'no-such-agent'] } }, 404, /agent "no-such-agent": no such agent/],
      [`/templates/${templateId}/apply`, { target: { agents: [web1.agentId] }, confirm_timeout: 1 }, 400, /confirm_timeout/],
      [`/templates/${templateId}/preview`, { target: { agents: [web1.agentId] }, confirm_timeout: 60 }, 400, /confirm_timeout|additional/],
      ['/templates/no-such-template/apply', { target: { agents: [web1.agentId] } }, 404, /no such template/],
    ];
    for (const [url, body, status, re] of cases) {
      const r = await adminCall(srv, 'POST', url, body);
      assert.equal(r.status, status, `${url} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.error), re);
    }
    assert.equal(((await adminCall(srv, 'GET', '/jobs')).body.jobs as unknown[]).length, before);
  });

  test('drift: the first hash is the baseline, a different one drifts, a write through the server refreshes it, an operator accepts it', async () => {
    const check = await adminCall(srv, 'POST', '/firewall/check', {});
    assert.equal(check.status, 201, JSON.stringify(check.body));
    assert.equal((check.body.batch as { hosts: unknown[] }).hosts.length, 3);
    const hashOf = new Map([[web1, HASH_A], [web2, HASH_A], [db1, HASH_A]]);
    for (const a of [web1, web2, db1]) {
      const cmds = await serve(a, (c) => (c.action === 'get_state_hash' ? { hash: hashOf.get(a), permanent: false } : {}));
      assert.deepEqual(cmds.map((c) => c.action), ['get_state_hash']);
    }
    const fw = async (a: SimAgent) => (await adminCall(srv, 'GET', `/agents/${a.agentId}/firewall`)).body.firewall as { baseline: string; current: string; drifted: boolean; baseline_refresh_pending: boolean };
    assert.deepEqual([(await fw(web1)).baseline, (await fw(web1)).drifted], [HASH_A, false]);
    assert.deepEqual((await adminCall(srv, 'GET', '/firewall/drift')).body.drifted, []);

    // web1 changes outside TuxSec; db1 changes through the server (a template applied and confirmed).
    hashOf.set(web1, HASH_B);
    hashOf.set(db1, HASH_B);
    await adminCall(srv, 'POST', '/jobs', { agent_id: db1.agentId, module: 'firewalld', action: 'confirm', params: { change_id: '0123456789abcdef' } });
    await serve(db1, () => ({ change_id: '0123456789abcdef', outcome: 'confirmed' }));
    assert.equal((await fw(db1)).baseline_refresh_pending, true);
    // A dry run or a change still awaiting confirmation does not refresh the baseline.
    await adminCall(srv, 'POST', '/jobs', { agent_id: web1.agentId, module: 'firewalld', action: 'add_service', params: { zone: 'public', service: 'x', confirm_timeout: 30 } });
    await serve(web1, () => ({ changed: true, action: 'x', change_id: 'fedcba9876543210', confirm_by: 'x' }));
    assert.equal((await fw(web1)).baseline_refresh_pending, false);

    await adminCall(srv, 'POST', '/firewall/check', { target: { agents: [web1.agentId, db1.agentId] } });
    for (const a of [web1, db1]) await serve(a, () => ({ hash: hashOf.get(a), permanent: false }));
    const drifted = (await adminCall(srv, 'GET', '/firewall/drift')).body.drifted as Array<Record<string, unknown>>;
    assert.deepEqual(drifted, [{ agent_id: web1.agentId, hostname: 'web1', baseline: HASH_A, current: HASH_B, checked_at: drifted[0]!.checked_at }]);
    assert.deepEqual([(await fw(db1)).baseline, (await fw(db1)).drifted], [HASH_B, false]);
    // The dashboard lists the same drifted hosts.
    assert.deepEqual(((await adminCall(srv, 'GET', '/dashboard')).body.drifted as Array<{ agent_id: string }>).map((d) => d.agent_id), [web1.agentId]);
    // A permanent hash or a malformed one is not the runtime firewall: ignored.
    await adminCall(srv, 'POST', '/jobs', { agent_id: web1.agentId, module: 'firewalld', action: 'get_state_hash', params: { permanent: true } });
    await serve(web1, () => ({ hash: HASH_A, permanent: true }));
    await adminCall(srv, 'POST', '/jobs', { agent_id: web1.agentId, module: 'firewalld', action: 'get_state_hash', params: {} });
    await serve(web1, () => ({ hash: 'not a hash' }));
    assert.equal((await fw(web1)).current, HASH_B);

    const acc = await adminCall(srv, 'POST', `/agents/${web1.agentId}/firewall/baseline`, {});
    assert.equal(acc.status, 200, JSON.stringify(acc.body));
    assert.equal((acc.body.firewall as { baseline: string }).baseline, HASH_B);
    assert.deepEqual((await adminCall(srv, 'GET', '/firewall/drift')).body.drifted, []);
    assert.equal((await adminCall(srv, 'POST', '/agents/no-such-agent/firewall/baseline', {})).status, 404);
  });

  test('tuxsec-server templates and firewall commands', async () => {
    const file = path.join(srv.dir, 'db.yaml');
    writeFileSync(file, 'name: db\ndescription: database hosts\nzones:\n  internal:\n    services: [postgresql]\n    ports: ["5433/tcp"]\n');
    const c = await srv.cli(['templates', 'create', '--file', file, '--json']);
    assert.equal(c.code, 0, c.stderr);
    const id = (JSON.parse(c.stdout) as { template: { id: string } }).template.id;
    const list = await srv.cli(['templates', 'list']);
    assert.match(list.stdout, /db\s+internal/);
    assert.match((await srv.cli(['templates', 'show', id])).stdout, /services: postgresql/);

    const p = srv.cli(['templates', 'preview', id, '--label', 'role=db', '--wait', '10']);
    // db1 answers while the command waits.
    for (let i = 0; i < 40; i++) {
      const got = await serve(db1, () => ({ changed: true, action: 'x', dry_run: true, items: [{ zone: 'internal', kind: 'service', value: 'postgresql', changed: true }] }), 5);
      if (got.length) break;
    }
    const done = await p;
    assert.equal(done.code, 0, done.stderr + done.stdout);
    assert.match(done.stdout, /db1 .*would add internal service postgresql/);

    const bad = path.join(srv.dir, 'bad.yaml');
    writeFileSync(bad, 'name: bad\nzones:\n  public:\n    services: ["http --permanent"]\n');
    const b = await srv.cli(['templates', 'create', '--file', bad]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /services/);
    const noTarget = await srv.cli(['templates', 'apply', id]);
    assert.equal(noTarget.code, 1);
    assert.match(noTarget.stderr, /give --agent ID or --label KEY=VALUE/);

    assert.equal((await srv.cli(['templates', 'delete', id])).code, 0);
    assert.match((await srv.cli(['firewall', 'drift'])).stdout, /no host drifted/);
  });
});

describe('firewall templates: the templates_max cap', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ config: { templates_max: 3 } });
  });
  after(async () => {
    await srv.stop();
    srv.cleanup();
  });

  test('attack: templates beyond templates_max are refused naming the cap and the setting, nothing stored; a delete makes room', async () => {
    const ids: string[] = [];
    for (const name of ['t1', 't2', 't3']) {
      const r = await adminCall(srv, 'POST', '/templates', { name, zones: ZONES });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push((r.body.template as { id: string }).id);
    }
    const over = await adminCall(srv, 'POST', '/templates', { name: 't4', zones: ZONES });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal(over.body.code, 'conflict');
    assert.match(String(over.body.error), /cannot create template "t4": the server already holds 3 templates \(templates_max\)/);
    const names = () => adminCall(srv, 'GET', '/templates').then((r) => (r.body.templates as Array<{ name: string }>).map((t) => t.name));
    assert.deepEqual(await names(), ['t1', 't2', 't3']);
    // A taken name is still answered as such, and replacing one at the cap works.
    assert.match(String((await adminCall(srv, 'POST', '/templates', { name: 't1', zones: ZONES })).body.error), /a template of that name exists/);
    assert.equal((await adminCall(srv, 'PUT', `/templates/${ids[0]}`, { name: 't1b', zones: ZONES })).status, 200);
    assert.equal((await adminCall(srv, 'DELETE', `/templates/${ids[1]}`)).status, 200);
    assert.equal((await adminCall(srv, 'POST', '/templates', { name: 't4', zones: ZONES })).status, 201);
    assert.deepEqual(await names(), ['t1b', 't3', 't4']);
  });
});
