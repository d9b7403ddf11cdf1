/**
 * The module contract, as the Python seed has it, in TypeScript.
 */
import type { TObject } from '@sinclair/typebox';
import type { AccessClass, CapabilityInfo, ModuleInfo } from '../protocol/messages.ts';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';
import type { ActionContext, AnyAction, Logger, LongRunning } from './action.ts';
import { schemaToParameters } from './schema.ts';

/** One capability (action) as a module declares it. */
export type ModuleCapability = CapabilityInfo;

export interface CommandRequest {
  action: string;
  parameters: Record<string, unknown>;
}

export interface CommandResponse {
  success: boolean;
  data?: unknown;
  error?: string;
}

/**
 * The error for an action a module does not have. rootd's registry answers it before any module
 * code runs; a module's own dispatch answers it only to a caller that bypassed the registry.
 */
export function unknownAction(module: string, action: string): TuxsecError {
  return new TuxsecError(ErrorCodes.actionNotFound, `unknown action "${action}" of module "${module}"`);
}

/** `[true, null]` when ready, `[false, reason]` when the module cannot work on this host. */
export type InitResult = [boolean, string | null];

/** A module rootd found: built in, or a plugin file in plugins_dir. */
export interface InstalledModule {
  name: string;
  source: 'builtin' | 'plugin';
  /** Registered and available: requests can use it. */
  loaded: boolean;
  /** Why it is not loaded (refused plugin file, failed initialize, disabled in rootd.yaml...). */
  reason: string | null;
  version?: string;
  /** The plugin's file. */
  file?: string;
}

/** systeminfo list_modules: `modules` as the Python agent had it (names), `details` per module found. */
export interface InstalledReport {
  modules: string[];
  details: InstalledModule[];
}

/** What rootd hands a module: its settings from rootd.yaml and a logger. */
export interface ModuleContext {
  settings: Record<string, unknown>;
  log: Logger;
  /** Every module installed, loaded or not. */
  installedModules?: () => InstalledReport;
  /** rootd's module_info of an available module (throws module-not-found or module-unavailable). */
  moduleInfo?: (name: string) => ModuleInfo;
}

/**
 * Base class of every module. Plugin authors may implement `executeCommand` by hand,
 * as in the Python seed, or extend {@link ActionModule} and declare actions.
 * Parameters are validated by the registry against `getCapabilities()` before
 * `executeCommand` runs.
 */
export abstract class BaseModule {
  abstract get name(): string;
  abstract get version(): string;
  abstract get description(): string;
  abstract getCapabilities(): ModuleCapability[];

  /** Prepares the module; a `[false, reason]` result leaves it unavailable, the daemon runs on. */
  async initialize(_ctx?: ModuleContext): Promise<InitResult> {
    return [true, null];
  }

  async shutdown(): Promise<void> {}

  abstract executeCommand(command: CommandRequest, ctx: ActionContext): Promise<CommandResponse>;

  /** Access class of an action; hand-written modules default to `write`. */
  accessOf(_action: string): AccessClass {
    return 'write';
  }

  /** Compiled parameter schema of an action, when the module declares one. */
  schemaOf(_action: string): TObject | undefined {
    return undefined;
  }

  /** True when identical concurrent calls of the action may share one run (see ActionDef.shared). */
  sharedResult(_action: string): boolean {
    return false;
  }

  /** Set for an action that runs as a background operation (see ActionDef.longRunning). */
  longRunningOf(_action: string): LongRunning | undefined {
    return undefined;
  }
}

/**
 * A module whose actions are data: name, description, schema, access class, handler.
 * Capabilities, validation and dispatch all come from {@link actions}.
 */
export abstract class ActionModule extends BaseModule {
  private table: Map<string, AnyAction> | undefined;

  /** The module's actions. Called once. */
  protected abstract defineActions(): AnyAction[];

  /** Actions by exact name; a duplicate name is a programming error. */
  get actions(): ReadonlyMap<string, AnyAction> {
    if (!this.table) {
      const t = new Map<string, AnyAction>();
      for (const a of this.defineActions()) {
        if (t.has(a.name)) throw new Error(`module ${this.name}: duplicate action "${a.name}"`);
        t.set(a.name, a);
      }
      this.table = t;
    }
    return this.table;
  }

  getCapabilities(): ModuleCapability[] {
    return [...this.actions.values()].map((a) => ({
      name: a.name,
      description: a.description,
      parameters: schemaToParameters(a.params),
      access: a.access,
      schema: a.params as unknown as Record<string, unknown>,
      ...(a.longRunning ? { long_running: { timeout_seconds: a.longRunning.timeoutSeconds } } : {}),
    }));
  }

  override accessOf(action: string): AccessClass {
    return this.actions.get(action)?.access ?? 'write';
  }

  override schemaOf(action: string): TObject | undefined {
    return this.actions.get(action)?.params;
  }

  override sharedResult(action: string): boolean {
    const a = this.actions.get(action);
    return a?.shared === true && a.access === 'read';
  }

  override longRunningOf(action: string): LongRunning | undefined {
    return this.actions.get(action)?.longRunning;
  }

  async executeCommand(command: CommandRequest, ctx: ActionContext): Promise<CommandResponse> {
    const action = this.actions.get(command.action);
    if (!action) throw unknownAction(this.name, command.action);
    const data = await action.handler(command.parameters, ctx);
    return { success: true, data };
  }
}
