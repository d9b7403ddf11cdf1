/**
 * Module registry: looks modules and actions up by exact name in Maps, validates
 * parameters and enforces access before any module code runs, and builds module-info.
 */
import type { TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ACTION_NAME_PATTERN, ACTION_NAME_RE, MODULE_NAME_PATTERN, MODULE_NAME_RE, type AccessClass, type ModuleInfo } from '../protocol/messages.ts';
import { ErrorCodes, TuxsecError, isTuxsecError } from '../protocol/errors.ts';
import { unknownAction, type BaseModule, type InitResult, type ModuleContext } from '../sdk/base-module.ts';
import type { ActionContext, Logger, LongRunning, PeerIdentity } from '../sdk/action.ts';
import { parametersToSchema, validateParams } from '../sdk/schema.ts';
import type { AccessPolicy } from './access.ts';
import type { FairScheduler } from './scheduler.ts';

export interface ModuleConfig {
  enabled: boolean;
  /** Allows actions of the `dangerous` class (direct rules, lockdown, panic...). */
  allow_dangerous: boolean;
  settings: Record<string, unknown>;
  /** Seconds a long-running action of this module may run, in place of the one it declares. */
  operation_timeout?: number;
}

export type ModuleState = 'available' | 'unavailable' | 'disabled';

/** What the registry needs of an action, read from the module once, at registration. */
interface ActionEntry {
  schema: TObject;
  access: AccessClass;
  /** Identical concurrent calls share one run (a read action the module declares shared). */
  shared: boolean;
  /**
   * What a long-running action declares (read again at each call: a module may tie its timeout
   * to its settings); null for an ordinary action.
   */
  longRunning: LongRunning | null;
}

/** Longest timeout a long-running action may declare: a week. */
const MAX_OPERATION_TIMEOUT_S = 7 * 24 * 3600;

/** A long-running action's declared timeout, checked: seconds above 0 and at most a week. */
function checkedTimeout(module: string, action: string, lr: LongRunning): number {
  const t = lr.timeoutSeconds;
  if (!(typeof t === 'number' && t > 0 && t <= MAX_OPERATION_TIMEOUT_S)) {
    throw new Error(`module "${module}" action "${action}": longRunning.timeoutSeconds must be a number of seconds above 0 and at most ${MAX_OPERATION_TIMEOUT_S}`);
  }
  return t;
}

/** An action looked up, allowed and its parameters validated, ready to run. */
export interface PreparedAction {
  module: string;
  action: string;
  access: AccessClass;
  /** Seconds it may run as an operation (rootd.yaml's operation_timeout first); null: an ordinary action. */
  operationTimeout: number | null;
  /** Runs it: an ordinary action through the scheduler, a long-running one at once (operations have their own limits). */
  run(ctx: ActionContext): Promise<unknown>;
}

interface Entry {
  module: BaseModule;
  config: ModuleConfig;
  state: ModuleState;
  reason: string | null;
  actions: Map<string, ActionEntry>;
}

export interface ModuleStatus {
  name: string;
  version: string;
  state: ModuleState;
  reason: string | null;
}

export const DEFAULT_MODULE_CONFIG: ModuleConfig = { enabled: true, allow_dangerous: false, settings: {} };

export class ModuleRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly log: Logger,
    private readonly policy: AccessPolicy,
    /** Runs module code fairly across callers; without one, actions run as they come. */
    private readonly scheduler?: FairScheduler,
  ) {}

  /** Registers a module; registering a name twice is a programming error. */
  register(module: BaseModule, config: ModuleConfig = DEFAULT_MODULE_CONFIG): void {
    const name = module.name;
    // Requests naming anything else are refused before lookup: such a module could never be called.
    if (typeof name !== 'string' || !MODULE_NAME_RE.test(name)) throw new Error(`module name ${JSON.stringify(String(name).slice(0, 80))} does not match ${MODULE_NAME_PATTERN}`);
    if (this.entries.has(name)) throw new Error(`module "${name}" registered twice`);
    const actions = new Map<string, ActionEntry>();
    for (const cap of module.getCapabilities()) {
      if (typeof cap.name !== 'string' || !ACTION_NAME_RE.test(cap.name)) {
        throw new Error(`module "${name}": action name ${JSON.stringify(String(cap.name).slice(0, 80))} does not match ${ACTION_NAME_PATTERN}`);
      }
      if (actions.has(cap.name)) throw new Error(`module "${name}": duplicate action "${cap.name}"`);
      const schema = module.schemaOf(cap.name) ?? parametersToSchema(cap.parameters);
      if (schema.additionalProperties !== false) {
        throw new Error(`module "${name}" action "${cap.name}": parameter schema must refuse unknown parameters`);
      }
      const access = module.accessOf(cap.name);
      const lr = module.longRunningOf(cap.name);
      if (lr !== undefined) checkedTimeout(name, cap.name, lr);
      actions.set(cap.name, {
        schema,
        access,
        // A long-running action never shares: each caller gets an operation of its own.
        shared: access === 'read' && lr === undefined && module.sharedResult(cap.name),
        longRunning: lr ?? null,
      });
    }
    this.entries.set(name, {
      module,
      config,
      state: config.enabled ? 'unavailable' : 'disabled',
      reason: config.enabled ? 'not initialized' : 'disabled in rootd.yaml',
      actions,
    });
  }

  /**
   * Initializes every enabled module; one that fails is reported and left unavailable.
   * `initialize` stands in for the modules' own in tests that must not touch the host.
   */
  async initializeAll(
    makeCtx: (name: string, settings: Record<string, unknown>) => ModuleContext,
    initialize: (m: BaseModule, ctx: ModuleContext) => Promise<InitResult> = (m, ctx) => m.initialize(ctx),
  ): Promise<void> {
    await Promise.all(
      [...this.entries.entries()].map(async ([name, e]) => {
        if (!e.config.enabled) return;
        try {
          const [ok, reason] = await initialize(e.module, makeCtx(name, e.config.settings));
          e.state = ok ? 'available' : 'unavailable';
          e.reason = ok ? null : (reason ?? 'initialize returned false');
        } catch (err) {
          e.state = 'unavailable';
          e.reason = err instanceof Error ? err.message : String(err);
        }
        if (e.state === 'available') this.log.info({ module: name, version: e.module.version }, 'module available');
        else this.log.warn({ module: name, reason: e.reason }, 'module not available');
      }),
    );
  }

  async shutdownAll(): Promise<void> {
    await Promise.all(
      [...this.entries.entries()].map(async ([name, e]) => {
        if (e.state !== 'available') return;
        try {
          await e.module.shutdown();
        } catch (err) {
          this.log.warn({ module: name, err: String(err) }, 'module shutdown failed');
        }
        e.state = 'unavailable';
        e.reason = 'shut down';
      }),
    );
  }

  /**
   * Applies a re-read config (SIGHUP): access settings take effect at once; enabling or
   * disabling a module needs a restart, which is logged.
   */
  reconfigure(configOf: (name: string) => ModuleConfig): void {
    for (const [name, e] of this.entries) {
      const next = configOf(name);
      if (next.enabled !== e.config.enabled) {
        this.log.warn({ module: name, enabled: next.enabled }, 'enabling or disabling a module takes effect at the next restart');
      }
      e.config = { ...next, enabled: e.config.enabled };
    }
  }

  /** Names of available modules, sorted. */
  available(): string[] {
    return [...this.entries.entries()].filter(([, e]) => e.state === 'available').map(([n]) => n).sort();
  }

  statuses(): ModuleStatus[] {
    return [...this.entries.entries()]
      .map(([name, e]) => ({ name, version: e.module.version, state: e.state, reason: e.reason }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e || e.state !== 'available') {
      // The compatible message; the code tells "unknown" from "present but unavailable".
      const code = e ? ErrorCodes.moduleUnavailable : ErrorCodes.moduleNotFound;
      throw new TuxsecError(code, `Module not found: ${name}`, e ? { reason: e.reason } : undefined);
    }
    return e;
  }

  info(name: string): ModuleInfo {
    const { module, actions } = this.entry(name);
    return {
      name: module.name,
      version: module.version,
      description: module.description,
      // A declared access class is replaced by the one execute enforces: a seed-style plugin may
      // declare `read` for what runs as `write`, and tuxsec-cli --read-only decides on this field.
      capabilities: module.getCapabilities().map((c) => ('access' in c ? { ...c, access: actions.get(c.name)?.access ?? 'write' } : c)),
    };
  }

  /** Runs one action: lookup, access, validation, then the module. Throws TuxsecError. */
  async execute(moduleName: string, action: string, params: Record<string, unknown>, ctx: ActionContext, coerce = false): Promise<unknown> {
    return this.prepare(moduleName, action, params, ctx.peer, coerce).run(ctx);
  }

  /** Lookup, access and validation of one action, before anything runs. Throws TuxsecError. */
  prepare(moduleName: string, action: string, params: Record<string, unknown>, peer: PeerIdentity, coerce = false): PreparedAction {
    const e = this.entry(moduleName);
    const a = e.actions.get(action);
    if (!a) throw unknownAction(moduleName, action);
    const { schema, access } = a;
    this.authorize(peer, moduleName, action, access);
    if (coerce) params = Value.Convert(schema, params) as Record<string, unknown>;
    validateParams(schema, params, `${moduleName} ${action}`);
    const call = (ctx: ActionContext) => e.module.executeCommand({ action, parameters: params }, ctx);
    let operationTimeout: number | null = null;
    if (a.longRunning !== null) {
      try {
        operationTimeout = e.config.operation_timeout ?? checkedTimeout(moduleName, action, a.longRunning);
      } catch (err) {
        throw new TuxsecError(ErrorCodes.internal, `cannot run ${moduleName} ${action}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const schedule = (ctx: ActionContext) => {
      if (!this.scheduler || operationTimeout !== null) return call(ctx);
      // Parameters are validated, so their JSON is a faithful key. A shared run is not taken out
      // of the queue when its first caller gives up: the others still want its result.
      if (a.shared) return this.scheduler.run(ctx.peer.uid, () => call(ctx), { sharedKey: `${moduleName}\0${action}\0${JSON.stringify(params)}` });
      return this.scheduler.run(ctx.peer.uid, () => call(ctx), { signal: ctx.signal });
    };
    return {
      module: moduleName,
      action,
      access,
      operationTimeout,
      run: async (ctx) => {
        let res;
        try {
          res = await schedule(ctx);
        } catch (err) {
          if (isTuxsecError(err)) throw err;
          this.log.error({ module: moduleName, action, err: err instanceof Error ? err.stack : String(err) }, 'action threw');
          throw new TuxsecError(ErrorCodes.actionFailed, `${moduleName} ${action}: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (!res.success) {
          throw new TuxsecError(ErrorCodes.actionFailed, res.error ?? `${moduleName} ${action} failed`);
        }
        return res.data ?? {};
      },
    };
  }

  /**
   * Whether `peer` may run this action of this access class now: the dangerous-class switch of
   * the module, then the access policy. Throws permission-denied.
   */
  authorize(peer: PeerIdentity, moduleName: string, action: string, access: AccessClass): void {
    if (access === 'dangerous' && !this.entries.get(moduleName)?.config.allow_dangerous) {
      throw new TuxsecError(
        ErrorCodes.permissionDenied,
        `cannot run ${moduleName} ${action}: it is in the dangerous class; set modules.${moduleName}.allow_dangerous: true in rootd.yaml to allow it`,
        { setting: `modules.${moduleName}.allow_dangerous` },
      );
    }
    this.policy.check(peer, moduleName, action, access);
  }
}
