import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_MODULES } from '../../../src/rootd/modules/index.ts';
import { ModuleRegistry, DEFAULT_MODULE_CONFIG } from '../../../src/rootd/registry.ts';
import { makeAccessPolicy } from '../../../src/rootd/access.ts';
import { ActionModule } from '../../../src/sdk/base-module.ts';
import { TuxsecError } from '../../../src/protocol/errors.ts';
import type { AccessClass } from '../../../src/protocol/messages.ts';
import { quiet, ctxFor, ready } from '../helpers.ts';

const ACCESS = new Set(['read', 'write', 'dangerous']);

describe('built-in module declarations', () => {
  for (const make of BUILTIN_MODULES) {
    const m = make();
    it(`${m.name}: every action has a description, an access class and a schema refusing unknown parameters`, () => {
      assert.ok(m instanceof ActionModule, 'built-in modules declare their actions');
      assert.ok((m as ActionModule).actions.size > 0);
      for (const [name, a] of (m as ActionModule).actions) {
        assert.match(name, /^[a-z][a-z0-9_]*$/);
        assert.ok(a.description.length > 0, `${name} has a description`);
        assert.ok(ACCESS.has(a.access), `${name} has an access class`);
        assert.equal(a.params.type, 'object', `${name} has a parameter schema`);
        assert.equal(a.params.additionalProperties, false, `${name} refuses unknown parameters`);
        for (const [p, s] of Object.entries(a.params.properties)) {
          assert.ok((s as { type?: string; anyOf?: unknown }).type || (s as { anyOf?: unknown }).anyOf, `${name}.${p} is typed`);
        }
      }
    });
    it(`${m.name}: module-info lists every parameter of every action, required exactly as the schema says`, () => {
      const actions = (m as ActionModule).actions;
      const caps = m.getCapabilities();
      assert.deepEqual(caps.map((c) => c.name), [...actions.keys()]);
      for (const c of caps) {
        const schema = actions.get(c.name)!.params;
        const required = new Set(schema.required ?? []);
        assert.deepEqual(
          c.parameters.map((p) => [p.name, p.required]),
          Object.keys(schema.properties).map((p) => [p, required.has(p) ? 'true' : 'false']),
          `${m.name} ${c.name}`,
        );
      }
    });
  }
});

describe('access policy: every access class x {root, allowed, read-only, other}', () => {
  const ALLOWED = 1000;
  const READONLY = 1001;
  const OTHER = 1002;
  const policy = makeAccessPolicy(() => ({ allowedUids: new Set([ALLOWED]), readOnlyUids: new Set([READONLY]) }));
  // The policy sees only the access class: the built-in actions' classes are checked above.
  const table: Array<[AccessClass, number, boolean]> = [];
  for (const access of ['read', 'write', 'dangerous'] as const) {
    table.push([access, 0, true], [access, ALLOWED, true], [access, READONLY, access === 'read'], [access, OTHER, false]);
  }
  for (const [access, uid, may] of table) {
    it(`makeAccessPolicy ${may ? 'lets' : 'refuses'} uid ${uid} ${may ? 'run' : ''} a ${access} action`, () => {
      const run = () => policy.check({ uid, gid: uid, pid: 1 }, 'm', 'a', access);
      if (may) run();
      else assert.throws(run, (e: TuxsecError) => e.code === 'permission-denied' && e.message === `cannot run m a: uid ${uid} may not run ${access} actions`);
    });
  }

  it('the registry refuses dangerous actions unless the module allows them, before validation', async () => {
    let checked = 0;
    for (const make of BUILTIN_MODULES) {
      const m = make() as ActionModule;
      const dangerous = [...m.actions.values()].filter((a) => a.access === 'dangerous');
      if (dangerous.length === 0) continue;
      const reg = new ModuleRegistry(quiet, policy);
      reg.register(m, DEFAULT_MODULE_CONFIG);
      // Available without touching the host: this checks policy, not the module.
      await reg.initializeAll(() => ({ settings: {}, log: quiet }), ready);
      for (const a of dangerous) {
        await assert.rejects(
          reg.execute(m.name, a.name, { bogus: 'x' }, ctxFor(0)),
          (e: TuxsecError) => e.code === 'permission-denied' && e.message.includes(`modules.${m.name}.allow_dangerous`),
        );
        checked++;
      }
    }
    assert.ok(checked > 0, 'some built-in action is dangerous');
  });
});
