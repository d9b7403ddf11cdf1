/**
 * Writes test plugins for a real rootd: ES modules importing the built SDK (dist/sdk.js), in
 * a directory rootd trusts (root-owned, 0755, in a sticky or root-only parent such as /tmp).
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './rootd.ts';

export const SDK_JS = path.join(ROOT, 'dist/sdk.js');

/** A new plugins directory under the temporary directory, as rootd requires it (0755). */
export function pluginDir(prefix = 'tsp-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

export interface PluginSpec {
  /** The module's name; the file is `<name>.mjs`. */
  name: string;
  description?: string;
  /**
   * Source of the array defineActions() returns; `defineAction`, `Params` and `Type` of the
   * SDK are in scope.
   */
  actions: string;
  /** Source put before the class: more imports, module-level state. */
  prelude?: string;
}

/** Writes an ActionModule plugin into `dir`; gives its file. */
export function writePlugin(dir: string, spec: PluginSpec): string {
  return writePluginSource(
    dir,
    `${spec.name}.mjs`,
    `import { ActionModule, defineAction, Params, Type } from ${JSON.stringify(SDK_JS)};
${spec.prelude ?? ''}
export default class extends ActionModule {
  get name() { return ${JSON.stringify(spec.name)}; }
  get version() { return '1.0.0'; }
  get description() { return ${JSON.stringify(spec.description ?? 'test plugin')}; }
  defineActions() { return ${spec.actions}; }
}
`,
  );
}

/**
 * Writes a plugin file as given, with `mode` set exactly (the umask does not apply), such as
 * 0o666 for a file rootd must refuse.
 */
export function writePluginSource(dir: string, file: string, source: string, mode = 0o644): string {
  const p = path.join(dir, file);
  writeFileSync(p, source, { mode });
  chmodSync(p, mode);
  return p;
}

/**
 * A plugin with long-running actions, for tests of operations through the real rootd:
 * `count` reports progress over `steps` steps of `ms` and returns `{counted}` (and `pad`, that many
 * bytes of "x", when asked); `loop` reports
 * progress until it is cancelled (or times out); `sleeper` waits on a child shell whose own
 * child runs `sleep <seconds>` (pick a unique value to find the grandchild in /proc), through the
 * SDK's run(), so a cancel must end the whole process group; `deaf` ignores its signal: it waits
 * `ms` and then returns `{late: true}` whatever happened meanwhile.
 */
export function writeLongRunningPlugin(dir: string, name = 'longmod', timeoutSeconds = 600): string {
  return writePlugin(dir, {
    name,
    description: 'long-running test actions',
    prelude: `import { run } from ${JSON.stringify(SDK_JS)};
const tick = (ms, signal) => new Promise((res, rej) => {
  const t = setTimeout(res, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); rej(signal.reason); }, { once: true });
});`,
    actions: `[
      defineAction({ name: 'count', description: 'count with progress', access: 'read', longRunning: { timeoutSeconds: ${timeoutSeconds} },
        params: Params({ steps: Type.Integer({ minimum: 1, maximum: 1000 }), ms: Type.Integer({ minimum: 0, maximum: 10000 }), pad: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000000 })) }),
        handler: async (p, ctx) => {
          for (let i = 0; i < p.steps; i++) { ctx.progress('counting', i / p.steps); await tick(p.ms, ctx.signal); }
          return { counted: p.steps, uid: ctx.peer.uid, ...(p.pad === undefined ? {} : { pad: 'x'.repeat(p.pad) }) };
        } }),
      defineAction({ name: 'loop', description: 'report progress until cancelled', access: 'write', longRunning: { timeoutSeconds: ${timeoutSeconds} },
        params: Params({}),
        handler: async (_p, ctx) => {
          for (let i = 0; ; i++) { ctx.progress('looping ' + i, (i % 100) / 100); await tick(50, ctx.signal); }
        } }),
      defineAction({ name: 'deaf', description: 'waits, ignoring its abort signal', access: 'write', longRunning: { timeoutSeconds: ${timeoutSeconds} },
        params: Params({ ms: Type.Integer({ minimum: 0, maximum: 60000 }) }),
        handler: async (p, ctx) => {
          ctx.progress('not listening');
          await new Promise((res) => setTimeout(res, p.ms));
          return { late: true };
        } }),
      defineAction({ name: 'sleeper', description: 'a child shell with a sleeping grandchild', access: 'write', longRunning: { timeoutSeconds: ${timeoutSeconds} },
        params: Params({ seconds: Type.String({ pattern: '^[0-9]{1,7}[.][0-9]{1,9}$' }) }),
        handler: async (p, ctx) => {
          ctx.progress('sleeping');
          const r = await run('/bin/sh', ['-c', 'sleep "$1" & wait', 'sh', p.seconds], { signal: ctx.signal, timeoutMs: 3600000 });
          return { code: r.code };
        } }),
    ]`,
  });
}
