/**
 * Declarative actions: one declaration gives validation, TypeScript types and module-info.
 */
import type { Static, TObject } from '@sinclair/typebox';
import type { AccessClass } from '../protocol/messages.ts';

/** Who is calling, as the kernel reported it at accept time (never from the JSON). */
export interface PeerIdentity {
  uid: number;
  gid: number;
  pid: number;
  /** User name when it could be resolved. */
  user?: string;
}

/** The small logging surface modules get (pino-compatible). */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface ActionContext {
  peer: PeerIdentity;
  /** Aborted when the request times out or the daemon stops. */
  signal: AbortSignal;
  log: Logger;
  /** The request id, for correlating audit and logs. */
  requestId: string;
  /**
   * Reports how far a long-running action has come: a phase ("scanning") and, where known, a
   * fraction from 0 to 1. Does nothing for an ordinary action.
   */
  progress(phase: string, fraction?: number): void;
}

/** What makes an action long-running: it answers at once with an operation id (issue 10). */
export interface LongRunning {
  /** Seconds the operation may run before it is cancelled (beyond rootd's request_timeout). */
  timeoutSeconds: number;
}

export interface ActionDef<P extends TObject = TObject, R = unknown> {
  name: string;
  description: string;
  params: P;
  access: AccessClass;
  /**
   * The result depends on the parameters alone, never on the caller: identical calls in
   * progress at the same time share one run and its result (a read class action only).
   */
  shared?: boolean;
  /** Set for an action that runs for minutes (an integrity check, a scan). */
  longRunning?: LongRunning;
  handler(params: Static<P>, ctx: ActionContext): Promise<R> | R;
}

/** Declares an action; the identity function exists to infer the handler's parameter type. */
export function defineAction<P extends TObject, R>(def: ActionDef<P, R>): ActionDef<P, R> {
  return def;
}

/** An action of any parameter type, as stored in a module's table. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyAction = ActionDef<TObject, any>;
