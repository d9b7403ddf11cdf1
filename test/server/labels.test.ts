/**
 * Agent labels (issue 11): an enrollment token's labels reach the agents enrolled with it; the
 * operator API and `tuxsec-server agents label` set and remove them; bad labels are refused with an
 * error naming them and change nothing. Real tuxsec-server over TLS, a simulated pull agent.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

describe('agent labels', () => {
  let srv: TestServer;
  const agents: SimAgent[] = [];

  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await srv.stop();
    srv.cleanup();
  });

  async function enrolled(tokenBody: Record<string, unknown>): Promise<SimAgent> {
    const tok = await adminCall(srv, 'POST', '/tokens', tokenBody);
    assert.equal(tok.status, 201, JSON.stringify(tok.body));
    const a = new SimAgent(srv.url, readFileSync(srv.certs.ca));
    agents.push(a);
    const r = await a.register({ enrollment_token: tok.body.token });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return a;
  }

  const labelsOf = async (id: string): Promise<Record<string, string>> => {
    const list = (await adminCall(srv, 'GET', '/agents')).body.agents as Array<{ id: string; labels: Record<string, string> }>;
    return list.find((x) => x.id === id)!.labels;
  };

  test('an agent enrolled with a labelled token carries its labels; the CLI sets and removes labels', async () => {
    const tok = await srv.cli(['token', 'create', '--label', 'env=prod', '--label', 'site=par1', '--name', 'prod web', '--json']);
    assert.equal(tok.code, 0, tok.stderr);
    const created = JSON.parse(tok.stdout) as { token: string; labels: Record<string, string>; name: string };
    assert.deepEqual(created.labels, { env: 'prod', site: 'par1' });
    assert.equal(created.name, 'prod web');
    const a = new SimAgent(srv.url, readFileSync(srv.certs.ca));
    agents.push(a);
    assert.equal((await a.register({ enrollment_token: created.token })).status, 200);
    assert.deepEqual(await labelsOf(a.agentId), { env: 'prod', site: 'par1' });

    const set = await srv.cli(['agents', 'label', a.agentId, 'role=web', 'site-', 'env=staging']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /env=staging,role=web/);
    assert.deepEqual(await labelsOf(a.agentId), { env: 'staging', role: 'web' });
    const listed = await srv.cli(['agents', 'list']);
    assert.match(listed.stdout, /LABELS/);
    assert.match(listed.stdout, /env=staging,role=web/);
  });

  test('bad labels are refused, naming what was wrong, and change nothing', async () => {
    const a = await enrolled({ labels: { tier: '1' } });
    const badKey = await srv.cli(['agents', 'label', a.agentId, '.x=1']);
    assert.notEqual(badKey.code, 0);
    assert.match(badKey.stderr, /invalid label key ".x"/);
    const badValue = await srv.cli(['agents', 'label', a.agentId, 'x=a b']);
    assert.notEqual(badValue.code, 0);
    assert.match(badValue.stderr, /invalid value "a b" for label "x"/);
    const api = await adminCall(srv, 'POST', `/agents/${a.agentId}/labels`, { set: { 'ok': 'v', 'bad key': 'v' } });
    assert.equal(api.status, 400);
    assert.match(JSON.stringify(api.body), /labels|bad key|set/);
    const many = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']));
    const tooMany = await adminCall(srv, 'POST', `/agents/${a.agentId}/labels`, { set: many });
    assert.equal(tooMany.status, 400);
    assert.match(String((tooMany.body as { error?: string }).error), /more than 32 labels/);
    assert.deepEqual(await labelsOf(a.agentId), { tier: '1' });
    const badToken = await adminCall(srv, 'POST', '/tokens', { labels: { env: 'has space' } });
    assert.equal(badToken.status, 400);
    const unknown = await adminCall(srv, 'POST', '/agents/00000000-0000-4000-8000-000000000000/labels', { set: { a: 'b' } });
    assert.equal(unknown.status, 404);
  });
});
