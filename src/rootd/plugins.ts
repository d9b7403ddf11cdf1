/**
 * Plugins: ES modules in plugins_dir whose default export is a BaseModule subclass.
 * A plugin runs as root, so its file and directory must be root-owned and not writable
 * by group or others; anything else is refused with the reason, and remembered so that
 * systeminfo list_modules can say what is installed and why it is not loaded.
 */
import { lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MODULE_NAME_RE } from '../protocol/messages.ts';
import { BaseModule } from '../sdk/base-module.ts';
import type { Logger } from '../sdk/action.ts';
import { UnsafePathError, assertTrustedDir } from '../os/secure-files.ts';

function safeOwner(p: string): string | null {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (st.uid !== 0) return 'is not owned by root';
  if (st.mode & 0o022) return 'is writable by group or others';
  return null;
}

/** Gives a seed-style plugin (no accessOf/schemaOf) the defaults of BaseModule. */
class PluginAdapter extends BaseModule {
  constructor(private readonly inner: BaseModule) {
    super();
  }
  get name() {
    return this.inner.name;
  }
  get version() {
    return this.inner.version;
  }
  get description() {
    return this.inner.description;
  }
  getCapabilities() {
    return this.inner.getCapabilities();
  }
  override initialize(ctx?: Parameters<BaseModule['initialize']>[0]) {
    return typeof this.inner.initialize === 'function' ? this.inner.initialize(ctx) : super.initialize(ctx);
  }
  override async shutdown() {
    if (typeof this.inner.shutdown === 'function') await this.inner.shutdown();
  }
  executeCommand(...a: Parameters<BaseModule['executeCommand']>) {
    return this.inner.executeCommand(...a);
  }
}

/** A plugin file found in plugins_dir: its module when loaded, else why not. */
export interface PluginFile {
  file: string;
  /** The module's name; the file's name without its extension when it was not loaded. */
  name: string;
  module: BaseModule | null;
  reason: string | null;
}

function pluginFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.js') || n.endsWith('.mjs')).sort();
}

/** A Python rootd module a migrated site left in plugins_dir: listed as installed, never loaded. */
const PYTHON_MODULE = /^[a-z][a-z0-9_]{0,63}\.py$/;
const PYTHON_REASON = 'a Python rootd module: this rootd loads ES-module plugins only (port it to the SDK)';

const stem = (file: string) => file.replace(/\.(m?js|py)$/, '');

function refused(dir: string, names: string[], reason: string): PluginFile[] {
  return names.map((n) => ({ file: path.join(dir, n), name: stem(n), module: null, reason }));
}

/** At most this many files of an unsafe directory are listed: others may have filled it. */
const MAX_LISTED_UNSAFE = 100;

/** Refuses every plugin of a directory that is not safe, naming why; listing its names imports nothing. */
function refuseAll(dir: string, reason: string): PluginFile[] {
  try {
    return refused(dir, pluginFiles(dir).slice(0, MAX_LISTED_UNSAFE), reason);
  } catch {
    return [];
  }
}

/** Loads the plugins of `dir`; gives every plugin file found, loaded or not. */
export async function loadPlugins(dir: string, log: Logger): Promise<PluginFile[]> {
  let names: string[];
  let pythonModules: string[];
  try {
    // The directories above count too: whoever can rename one can swap in another directory.
    try {
      assertTrustedDir(path.dirname(dir));
    } catch (e) {
      if (!(e instanceof UnsafePathError)) throw e;
      log.error({ dir, err: e.message }, 'plugins directory is in a directory other users can change; no plugin loaded');
      return refuseAll(dir, `plugins directory is in a directory other users can change: ${e.message}`);
    }
    const why = safeOwner(dir);
    if (why) {
      log.error({ dir }, `plugins directory ${why}; no plugin loaded`);
      return refuseAll(dir, `plugins directory ${why}`);
    }
    names = pluginFiles(dir);
    pythonModules = readdirSync(dir).filter((n) => PYTHON_MODULE.test(n) && n !== '__init__.py').sort().slice(0, MAX_LISTED_UNSAFE);
  } catch (e) {
    log.warn({ dir, err: (e as Error).message }, 'cannot read plugins directory');
    return [];
  }
  const out: PluginFile[] = refused(dir, pythonModules, PYTHON_REASON);
  if (pythonModules.length > 0) log.warn({ dir, files: pythonModules }, PYTHON_REASON);
  for (const n of names) {
    const file = path.join(dir, n);
    try {
      const why = safeOwner(file);
      if (why) throw new Error(`plugin file ${why}`);
      const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
      const Ctor = mod.default;
      if (typeof Ctor !== 'function') throw new Error('no default export');
      const inst = new (Ctor as new () => unknown)() as Partial<BaseModule>;
      // Duck-typed: a plugin built against its own copy of the SDK is a different class.
      if (typeof inst.executeCommand !== 'function' || typeof inst.getCapabilities !== 'function' || typeof inst.name !== 'string') {
        throw new Error('default export is not a module (needs name, getCapabilities and executeCommand)');
      }
      const m = inst instanceof BaseModule || typeof inst.schemaOf === 'function' ? (inst as BaseModule) : new PluginAdapter(inst as BaseModule);
      // A name the registry will refuse is reported by its file's name, never echoed unbounded.
      const name = MODULE_NAME_RE.test(m.name) ? m.name : stem(n);
      out.push({ file, name, module: m, reason: null });
      log.info({ plugin: file, module: m.name }, 'plugin loaded');
    } catch (e) {
      log.error({ plugin: file, err: (e as Error).message }, 'plugin not loaded');
      out.push(...refused(dir, [n], (e as Error).message));
    }
  }
  return out;
}
