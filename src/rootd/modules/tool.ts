/**
 * What the modules that drive a security tool (aide, clamav) share: their settings read with the
 * one config validator, the parameter schema of a path, and a tool run that stops when the
 * action is cancelled.
 */
import { accessSync, constants } from 'node:fs';
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { validateConfig } from '../../common/config-file.ts';
import { ErrorCodes, TuxsecError, isTuxsecError } from '../../protocol/errors.ts';
import { run, type RunOptions, type RunResult } from '../../os/exec.ts';
import type { ActionContext, LongRunning } from '../../sdk/action.ts';
import { ActionModule, type InitResult, type ModuleContext } from '../../sdk/base-module.ts';

/** An absolute path a caller names: no NUL (the kernel would cut it there), bounded. */
export function AbsolutePath(description: string) {
  return Type.String({ minLength: 1, maxLength: 4096, pattern: '^/[^\\u0000]*$', description: `an absolute path: ${description}` });
}

/**
 * A module's `settings` from rootd.yaml, defaults filled in; throws a message naming the key
 * (initialize turns it into the module's "unavailable" reason).
 */
export function moduleSettings<T extends TSchema>(module: string, schema: T, settings: Record<string, unknown>): Static<T> {
  return validateConfig(schema, settings, `rootd.yaml modules.${module}.settings`);
}

/** Seconds an operation runs past its tool's own timeout: that timeout answers first, with its own message. */
const TOOL_TIMEOUT_MARGIN_S = 30;
/** The longest operation timeout rootd takes (a week). */
const MAX_OPERATION_S = 7 * 24 * 3600;

/**
 * A long-running declaration whose timeout follows a setting (read at each start), so raising
 * the tool's timeout in rootd.yaml raises the operation's too: one setting suffices.
 */
export function longRunningFrom(toolTimeoutSeconds: () => number): LongRunning {
  return {
    get timeoutSeconds() {
      return Math.min(toolTimeoutSeconds() + TOOL_TIMEOUT_MARGIN_S, MAX_OPERATION_S);
    },
  };
}

/** True when `file` exists and root may run it. */
export function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The last `max` characters of a program's message, for an error: enough to say why, bounded. */
export function lastWords(text: string, max = 400): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(-max)}` : t;
}

/** Why an action stopped when its signal aborted: the reason rootd gave (timeout, stopping) or a cancel. */
export function stopped(ctx: ActionContext, what: string): TuxsecError {
  const reason: unknown = ctx.signal.reason;
  if (isTuxsecError(reason)) return reason;
  return new TuxsecError(ErrorCodes.interrupted, `cannot ${what}: cancelled`);
}

/**
 * Runs a tool for an action: the action's signal stops it (exec kills it), and a stop is
 * reported as such rather than as the tool's failure.
 */
export async function runTool(ctx: ActionContext, what: string, file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (ctx.signal.aborted) throw stopped(ctx, what);
  let r: RunResult;
  try {
    r = await run(file, args, { ...opts, signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) throw stopped(ctx, what);
    throw e;
  }
  if (ctx.signal.aborted) throw stopped(ctx, what);
  if (r.timedOut) throw new TuxsecError(ErrorCodes.timeout, `cannot ${what}: ${file} did not finish within ${Math.round((opts.timeoutMs ?? 30_000) / 1000)} s`);
  return r;
}

/**
 * A module that drives one program: its settings come from rootd.yaml (checked against
 * `schema`), and it is unavailable, saying why, when the program is not installed.
 */
export abstract class ToolModule<T extends TObject> extends ActionModule {
  protected settings: Static<T>;

  /** `module` is the module's name, for the messages about its settings. */
  constructor(
    private readonly module: string,
    private readonly schema: T,
  ) {
    super();
    this.settings = moduleSettings(module, schema, {});
  }

  get version(): string {
    return '1.0.0';
  }

  /** The program the module cannot work without, and the package that installs it. */
  protected abstract program(): { file: string; what: string; install: string };

  /** Called when initialize has taken new settings. */
  protected settingsChanged(): void {}

  override async initialize(ctx?: ModuleContext): Promise<InitResult> {
    try {
      this.settings = moduleSettings(this.module, this.schema, ctx?.settings ?? {});
    } catch (e) {
      return [false, (e as Error).message];
    }
    this.settingsChanged();
    const p = this.program();
    if (!executable(p.file)) return [false, `${p.what} is not installed (${p.file} not found; apt install ${p.install})`];
    return [true, null];
  }
}
