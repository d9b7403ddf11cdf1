import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_MODULES } from '../../src/rootd/modules/index.ts';
import { ModuleRegistry, DEFAULT_MODULE_CONFIG } from '../../src/rootd/registry.ts';
import { makeAccessPolicy } from '../../src/rootd/access.ts';
import { ActionModule } from '../../src/sdk/base-module.ts';
import { TuxsecError } from '../../src/protocol/errors.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
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
    it(`${m.name}: module-info lists every action in the compatible shape`, () => {
      const caps = m.getCapabilities();
      for (const c of caps) {
        for (const p of c.parameters) {
          assert.ok(p.required === 'true' || p.required === 'false');
          assert.equal(typeof p.type, 'string');
        }
      }
    });
  }
});

describe('access table: every action x {root, allowed, read-only, other}', () => {
  const ALLOWED = 1000;
  const READONLY = 1001;
  const OTHER = 1002;
  const policy = makeAccessPolicy(() => ({ allowedUids: new Set([ALLOWED]), readOnlyUids: new Set([READONLY]) }));
  for (const make of BUILTIN_MODULES) {
    const m = make() as ActionModule;
    it(`${m.name}: the policy decides exactly as documented`, () => {
      for (const [name, a] of m.actions) {
        for (const [uid, may] of [
          [0, true],
          [ALLOWED, true],
          [READONLY, a.access === 'read'],
          [OTHER, false],
        ] as const) {
          const peer = { uid, gid: uid, pid: 1 };
          let allowed = true;
          try {
            policy.check(peer, m.name, name, a.access);
          } catch (e) {
            assert.ok(e instanceof TuxsecError && e.code === 'permission-denied');
            allowed = false;
          }
          assert.equal(allowed, may, `${m.name} ${name} (${a.access}) for uid ${uid}`);
        }
      }
    });
  }

  it('the registry refuses dangerous actions unless the module allows them, before validation', async () => {
    for (const make of BUILTIN_MODULES) {
      const m = make() as ActionModule;
      const dangerous = [...m.actions.values()].filter((a) => a.access === 'dangerous');
      if (dangerous.length === 0) continue;
      const reg = new ModuleRegistry(quiet, policy);
      // Mark it available without touching the host: this checks policy, not the module.
      reg.register(m, DEFAULT_MODULE_CONFIG);
      (reg as unknown as { entries: Map<string, { state: string }> }).entries.get(m.name)!.state = 'available';
      for (const a of dangerous) {
        await assert.rejects(
          reg.execute(m.name, a.name, { bogus: 'x' }, { peer: { uid: 0, gid: 0, pid: 1 }, signal: new AbortController().signal, log: quiet, requestId: 't' }),
          (e: TuxsecError) => e.code === 'permission-denied' && e.message.includes(`modules.${m.name}.allow_dangerous`),
        );
      }
    }
  });
});
