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
