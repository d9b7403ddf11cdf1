/**
 * The selinux module: status and mode, booleans, file context rules, port labels and restorecon.
 * Runtime actions need SELinux in the kernel; the policy store (semanage) and the config file do
 * not, so on a host whose kernel runs without SELinux those still work and the rest are refused
 * with `service-unavailable` saying why.
 */
import { existsSync } from 'node:fs';
import { ActionModule, type InitResult, type ModuleContext } from '../../../sdk/base-module.ts';
import type { AnyAction, Logger } from '../../../sdk/action.ts';
import { run } from '../../../os/exec.ts';
import type { Deps } from './deps.ts';
import { DEFAULT_PROGRAMS, Tools, type Programs, type Runner } from './semanage.ts';
import { kernelState, readConfig, type HostPaths } from './state.ts';
import { enforceActions } from './enforce.ts';
import { booleanActions } from './booleans.ts';
import { fcontextActions } from './fcontexts.ts';
import { portActions } from './ports.ts';
import { restoreconActions } from './restorecon.ts';

export const DEFAULT_CONFIG_FILE = '/etc/selinux/config';

export interface SelinuxModuleOptions {
  /** Runs a program; default src/os/exec.ts's run. Unit tests record the argument arrays. */
  run?: Runner;
  programs?: Partial<Programs>;
  exists?: (file: string) => boolean;
  /** selinuxfs and /proc; tests point them at files they write, this host's kernel has no SELinux. */
  paths?: Partial<HostPaths>;
}

const SETTINGS = new Set(['config', 'store']);
const STORE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Checks the module's rootd.yaml settings; gives the reason they are refused, or null. */
function badSetting(s: Record<string, unknown>): string | null {
  for (const k of Object.keys(s)) if (!SETTINGS.has(k)) return `unknown setting modules.selinux.settings.${k.slice(0, 64)} (known: config, store)`;
  const c = s.config;
  if (c !== undefined && (typeof c !== 'string' || !c.startsWith('/') || c.length > 4096 || [...c].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\x7f'))) {
    return 'invalid value for setting modules.selinux.settings.config: expected an absolute path';
  }
  if (s.store !== undefined && s.store !== null && (typeof s.store !== 'string' || !STORE.test(s.store))) {
    return 'invalid value for setting modules.selinux.settings.store: expected a policy store name (letters, digits, "_", "." and "-")';
  }
  return null;
}

export class SelinuxModule extends ActionModule {
  private configFile = DEFAULT_CONFIG_FILE;
  private store: string | null = null;
  private readonly deps: Deps;

  constructor(opts: SelinuxModuleOptions = {}) {
    super();
    const exists = opts.exists ?? existsSync;
    const paths: HostPaths = { selinuxfs: '/sys/fs/selinux', proc: '/proc', ...opts.paths };
    const tools = new Tools({ run: opts.run ?? run, programs: { ...DEFAULT_PROGRAMS, ...opts.programs }, exists, store: () => this.store });
    this.deps = { tools, paths, exists, configFile: () => this.configFile, store: () => this.store };
  }

  get name(): string {
    return 'selinux';
  }
  get version(): string {
    return '1.0.0';
  }
  get description(): string {
    return 'SELinux: status and mode, booleans, file context rules, port labels, restorecon';
  }

  protected defineActions(): AnyAction[] {
    const d = this.deps;
    return [...enforceActions(d), ...booleanActions(d), ...fcontextActions(d), ...portActions(d), ...restoreconActions(d)];
  }

  override async initialize(ctx?: ModuleContext): Promise<InitResult> {
    const settings = ctx?.settings ?? {};
    const bad = badSetting(settings);
    if (bad) return [false, bad];
    this.configFile = (settings.config as string | undefined) ?? DEFAULT_CONFIG_FILE;
    this.store = (settings.store as string | null | undefined) ?? null;
    const d = this.deps;
    const k = kernelState(d.paths);
    if (k.enabled) return [true, null];
    const programs = (['semanage', 'setsebool', 'restorecon'] as const).map((p) => d.tools.programPath(p));
    if (!readConfig(this.configFile).exists && !programs.some(d.exists)) {
      return [false, `SELinux is not installed: ${k.reason}, and neither ${this.configFile} nor its programs (${programs.join(', ')}) exist`];
    }
    const log: Logger | undefined = ctx?.log;
    log?.warn({ reason: k.reason }, 'selinux: runtime actions are refused; the policy store and the config file are served');
    return [true, null];
  }
}
