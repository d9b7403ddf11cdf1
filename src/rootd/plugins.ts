/**
 * Plugins: ES modules in plugins_dir whose default export is a BaseModule subclass.
 * A plugin runs as root, so its file and directory must be root-owned and not writable
 * by group or others; anything else is refused with the reason.
 */
import { lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BaseModule } from '../sdk/base-module.ts';
import type { Logger } from '../sdk/action.ts';

function safeOwner(p: string): string | null {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (st.uid !== 0) return 'is not owned by root';
  if (st.mode & 0o022) return 'is writable by group or others';
  return null;
}

export async function loadPlugins(dir: string, log: Logger): Promise<BaseModule[]> {
  let names: string[];
  try {
    const why = safeOwner(dir);
    if (why) {
      log.error({ dir }, `plugins directory ${why}; no plugin loaded`);
      return [];
    }
    names = readdirSync(dir).filter((n) => n.endsWith('.js') || n.endsWith('.mjs')).sort();
  } catch (e) {
    log.warn({ dir, err: (e as Error).message }, 'cannot read plugins directory');
    return [];
  }
  const out: BaseModule[] = [];
  for (const n of names) {
    const file = path.join(dir, n);
    try {
      const why = safeOwner(file);
      if (why) throw new Error(`plugin file ${why}`);
      const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
      const Ctor = mod.default;
      if (typeof Ctor !== 'function') throw new Error('no default export');
      const inst = new (Ctor as new () => unknown)();
      // Duck-typed: a plugin built against its own copy of the SDK is a different class.
      if (!(inst instanceof BaseModule) && typeof (inst as BaseModule).executeCommand !== 'function') {
        throw new Error('default export is not a BaseModule');
      }
      out.push(inst as BaseModule);
      log.info({ plugin: file, module: (inst as BaseModule).name }, 'plugin loaded');
    } catch (e) {
      log.error({ plugin: file, err: (e as Error).message }, 'plugin not loaded');
    }
  }
  return out;
}
