import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requestTypes } from '../../../src/rootd/dispatcher.ts';
import { harness, peerOf } from '../helpers.ts';

const run = (action: string, parameters: Record<string, unknown> = {}, request_id: unknown = 'r') => ({
  type: 'execute_command',
  request_id,
  data: { module: 'testmod', action, parameters },
});

describe('dispatcher request table', () => {
  it('requestTypes lists the five INTEROP request types and the operation ones, each with an access rule', () => {
    const rows = requestTypes();
    assert.deepEqual(rows.map((r) => r.type).sort(), [
      'execute_command',
      'list_modules',
      'module_info',
      'operation_cancel',
      'operation_list',
      'operation_result',
      'operation_status',
      'ping',
      'system_info',
    ]);
    for (const r of rows) assert.ok(r.access === 'peer' || r.access === 'action' || r.access === 'operation', `${r.type} has an access rule`);
    // Types that run module code go through the access policy.
    assert.deepEqual(rows.filter((r) => r.access === 'action').map((r) => r.type).sort(), ['execute_command', 'system_info']);
    // Types that name an operation are its owner's (or root's), under the access rules of its action.
    assert.deepEqual(rows.filter((r) => r.access === 'operation').map((r) => r.type).sort(), ['operation_cancel', 'operation_result', 'operation_status']);
  });

  it('dispatcher answers ping synchronously and does not audit it', async () => {
    const h = await harness();
    const out = h.dispatcher.handle(Buffer.from('{"type":"ping","request_id":"a"}'), peerOf(0));
    assert.equal(out, '{"type":"success","request_id":"a","data":{"pong":true}}\n');
    assert.equal(h.audit.length, 0);
  });

  it('dispatcher echoes a numeric request_id as the same number, in successes and errors', async () => {
    const h = await harness();
    assert.deepEqual(await h.ask({ type: 'ping', request_id: 42 }), { type: 'success', request_id: 42, data: { pong: true } });
    assert.equal((await h.ask(run('look', {}, 7.5))).request_id, 7.5);
    assert.deepEqual(await h.ask({ type: 'module_info', request_id: 0, data: {} }), {
      type: 'error',
      request_id: 0,
      data: { error: 'Module name is required', code: 'invalid-request' },
    });
    // Anything else is not echoed.
    for (const id of [null, true, { a: 1 }, [1], 'x'.repeat(257)]) assert.equal((await h.ask({ type: 'ping', request_id: id })).request_id, 'unknown');
    // The audit log keeps its string field.
    await h.ask(run('look', {}, 9));
    assert.equal(h.audit.at(-1)!.request_id, '9');
  });

  it('dispatcher runs an action by its access class: read-only uid may look, not change', async () => {
    const h = await harness();
    assert.deepEqual(await h.ask(run('look', { n: 3 }), 1001), { type: 'success', request_id: 'r', data: { success: true, data: { n: 3 } } });
    const denied = await h.ask(run('change'), 1001);
    assert.deepEqual(denied.data, { error: 'cannot run testmod change: uid 1001 may not run write actions', code: 'permission-denied', success: false });
    assert.deepEqual(await h.ask(run('change'), 1000), { type: 'success', request_id: 'r', data: { success: true, data: {} } });
    assert.deepEqual(h.module.calls, ['look', 'change']);
    assert.equal(h.audit.find((r) => r.action === 'change' && r.uid === 1001)?.outcome, 'denied');
  });

  it('dispatcher refuses a dangerous action the module does not allow, even to root, before it runs', async () => {
    const h = await harness();
    const res = await h.ask(run('panic'));
    assert.equal((res.data as { code: string }).code, 'permission-denied');
    assert.match((res.data as { error: string }).error, /modules\.testmod\.allow_dangerous/);
    assert.deepEqual(h.module.calls, []);
  });

  it('dispatcher answers an unknown action with action-not-found and never reaches the module', async () => {
    const h = await harness();
    const res = await h.ask(run('nope'));
    assert.deepEqual(res.data, { error: 'unknown action "nope" of module "testmod"', code: 'action-not-found', success: false });
    assert.deepEqual(h.module.calls, []);
  });

  it('dispatcher validates parameters before the module runs', async () => {
    const h = await harness();
    const res = await h.ask(run('look', { n: 'three' }));
    assert.equal((res.data as { code: string }).code, 'invalid-params');
    assert.deepEqual(h.module.calls, []);
    // coerce converts a CLI string to the declared type.
    const coerced = await h.ask({ ...run('look', { n: '3' }), data: { module: 'testmod', action: 'look', parameters: { n: '3' }, coerce: true } });
    assert.deepEqual(coerced.data, { success: true, data: { n: 3 } });
  });

  it('dispatcher refuses a poisoned ping and audits the refusal', async () => {
    const h = await harness();
    const res = await h.ask('{"type":"ping","request_id":"p","data":{"__proto__":{"x":1}}}');
    assert.deepEqual(res, { type: 'error', request_id: 'p', data: { error: 'Invalid message: forbidden key "data.__proto__"', code: 'invalid-request' } });
    assert.equal(h.audit.length, 1);
    assert.equal(h.audit[0]!.outcome, 'error');
  });

  it('dispatcher refuses every type once rootd is stopping, and aborts actions in flight', async () => {
    const h = await harness();
    const waiting = h.ask(run('wait'));
    h.stop.abort();
    assert.deepEqual((await waiting).data, { error: 'tuxsec-rootd is stopping', code: 'shutting-down', success: false });
    for (const type of ['ping', 'list_modules', 'execute_command']) {
      assert.equal(((await h.ask({ type, request_id: 's' })).data as { code: string }).code, 'shutting-down', type);
    }
  });

  it('dispatcher answers timeout when an action outlives request_timeout and aborts its signal', async () => {
    const h = await harness({ limits: { requestTimeoutMs: 50 } });
    const res = await h.ask(run('wait'));
    assert.deepEqual(res.data, { error: 'request did not finish within 0.05 s', code: 'timeout', success: false });
    assert.equal(h.audit.at(-1)!.code, 'timeout');
  });

  it('dispatcher turns a throwing action into action-failed naming it', async () => {
    const h = await harness();
    assert.deepEqual((await h.ask(run('boom'))).data, { error: 'testmod boom: kaput', code: 'action-failed', success: false });
  });

  it('dispatcher rate-limits per uid and audits only the first refusal of a run', async () => {
    const h = await harness({ rate: 1 });
    assert.equal((await h.ask({ type: 'ping', request_id: 1 }, 1000)).type, 'success');
    for (let i = 0; i < 3; i++) {
      const res = await h.ask({ type: 'ping', request_id: i }, 1000);
      assert.deepEqual(res, { type: 'error', request_id: i, data: { error: 'too many requests from uid 1000; retry later', code: 'rate-limited' } });
    }
    assert.equal(h.audit.filter((r) => r.code === 'rate-limited').length, 1);
    // Another uid has its own bucket.
    assert.equal((await h.ask({ type: 'ping', request_id: 1 }, 1001)).type, 'success');
  });

  it('dispatcher lists available modules and says why the others are not', async () => {
    const h = await harness();
    assert.deepEqual(await h.ask({ type: 'list_modules', request_id: 'l' }), { type: 'success', request_id: 'l', data: { modules: ['testmod'], unavailable: [] } });
    const info = await h.ask({ type: 'module_info', request_id: 'i', data: { module: 'testmod' } });
    const caps = (info.data as { module_info: { capabilities: Array<{ name: string; access: string }> } }).module_info.capabilities;
    assert.deepEqual(caps.map((c) => [c.name, c.access]), [['look', 'read'], ['change', 'write'], ['panic', 'dangerous'], ['wait', 'read'], ['boom', 'read']]);
    assert.deepEqual((await h.ask({ type: 'module_info', request_id: 'n', data: { module: 'nope' } })).data, { error: 'Module not found: nope', code: 'module-not-found' });
  });
});
