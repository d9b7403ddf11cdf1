/**
 * What is installed: every built-in module and every plugin file found, registered or not,
 * as systeminfo list_modules reports it (the Python agent listed its installed module
 * packages there, loaded or not).
 */
import type { BaseModule, InstalledModule, InstalledReport } from '../sdk/base-module.ts';
import type { Logger } from '../sdk/action.ts';
import type { ModuleConfig, ModuleRegistry, ModuleStatus } from './registry.ts';
import type { PluginFile } from './plugins.ts';

interface Found {
  name: string;
  source: InstalledModule['source'];
  file?: string;
  /** Registered in the registry; its state says whether it is loaded. */
  registered: boolean;
  /** Why it never reached the registry. */
  reason: string | null;
}

/** Registers the built-in modules and the loaded plugins; remembers every one, with why it was not registered. */
export class InstalledModules {
  private readonly found: Found[] = [];

  constructor(private readonly log: Logger) {}

  registerAll(registry: ModuleRegistry, builtins: BaseModule[], plugins: PluginFile[], configOf: (name: string) => ModuleConfig): void {
    const offered = [
      ...builtins.map((m) => ({ name: m.name, source: 'builtin' as const, module: m, reason: null })),
      ...plugins.map((p) => ({ ...p, source: 'plugin' as const })),
    ];
    for (const o of offered) {
      const f: Found = { name: o.name, source: o.source, registered: false, reason: o.reason, ...('file' in o ? { file: o.file } : {}) };
      if (o.module) {
        try {
          registry.register(o.module, configOf(o.name));
          f.registered = true;
        } catch (e) {
          f.reason = `not registered: ${(e as Error).message}`;
          this.log.error({ module: o.name, err: (e as Error).message }, 'module not registered');
        }
      }
      this.found.push(f);
    }
  }

  /** Names of every module found, sorted, once each (a plugin may bear a built-in's name). */
  names(): string[] {
    return [...new Set(this.found.map((f) => f.name))].sort();
  }

  /** Every module found, loaded (registered and available) or not, with why not. */
  report(statuses: ModuleStatus[]): InstalledReport {
    const byName = new Map(statuses.map((s) => [s.name, s]));
    const details = this.found.map((f): InstalledModule => {
      const st = f.registered ? byName.get(f.name) : undefined;
      const loaded = st?.state === 'available';
      return {
        name: f.name,
        source: f.source,
        loaded,
        reason: loaded ? null : (st?.reason ?? f.reason),
        ...(st ? { version: st.version } : {}),
        ...(f.file ? { file: f.file } : {}),
      };
    });
    return { modules: this.names(), details };
  }
}
