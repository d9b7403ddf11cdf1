/**
 * Wire types of the rootd socket protocol (INTEROP section 1). One JSON object per line.
 * Imports nothing of ours but errors, so every process can share it.
 */
import type { ErrorCode } from './errors.ts';

export type RequestType =
  | 'ping'
  | 'list_modules'
  | 'module_info'
  | 'system_info'
  | 'execute_command'
  | 'operation_status'
  | 'operation_result'
  | 'operation_cancel'
  | 'operation_list';

/**
 * A request id as a client may send it. The Python rootd echoed it as given, so a number
 * comes back a number; anything else is answered as "unknown".
 */
export type RequestId = string | number;

/**
 * What a module name may be: rootd.yaml's `modules` keys, registered modules and request
 * names all use this one definition, so a name that could never match is refused before it
 * is looked up, logged or audited.
 */
export const MODULE_NAME_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
/** What an action name may be: letters, digits and "_", at most 64 characters (the seed's `my_action`). */
export const ACTION_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,63}$';
export const MODULE_NAME_RE = new RegExp(MODULE_NAME_PATTERN);
export const ACTION_NAME_RE = new RegExp(ACTION_NAME_PATTERN);

export interface Request<D = Record<string, unknown>> {
  type: string;
  request_id: RequestId;
  data: D;
}

/** `Id` is the type of the id the request carried (our clients send strings). */
export interface SuccessResponse<D = Record<string, unknown>, Id extends RequestId = string> {
  type: 'success';
  request_id: Id;
  data: D;
}

export interface ErrorData {
  error: string;
  code?: ErrorCode;
  success?: false;
  details?: Record<string, unknown>;
}

export interface ErrorResponse<Id extends RequestId = string> {
  type: 'error';
  request_id: Id;
  data: ErrorData;
}

export type Response<Id extends RequestId = string> = SuccessResponse<Record<string, unknown>, Id> | ErrorResponse<Id>;

/** One response as its line on the wire: rootd writes every answer through this. */
export function responseLine(res: Response<RequestId>): string {
  return JSON.stringify(res) + '\n';
}

/** A parameter as module_info lists it (compatible shape: `required` is a string). */
export interface ParameterInfo {
  name: string;
  type: string;
  description: string;
  required: 'true' | 'false';
}

export type AccessClass = 'read' | 'write' | 'dangerous';

export interface CapabilityInfo {
  name: string;
  description: string;
  parameters: ParameterInfo[];
  /** Extension: the access class of the action. */
  access?: AccessClass;
  /** Extension: the JSON Schema of the parameters object. */
  schema?: Record<string, unknown>;
  /** Extension: the action runs as a background operation (docs/operations.md), with its declared timeout. */
  long_running?: { timeout_seconds: number };
}

export interface ModuleInfo {
  name: string;
  version: string;
  description: string;
  capabilities: CapabilityInfo[];
}

/** Default socket path of rootd. */
export const DEFAULT_SOCKET = '/var/run/tuxsec/rootd.sock';
/** Mode of the socket's directory (root:socket group): root writes it, the group only passes through. */
export const SOCKET_DIR_MODE = 0o750;
/** Mode of the socket (root:socket group): root and the group connect, nobody else. */
export const SOCKET_MODE = 0o660;
/** Default largest request or response line, in bytes. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** Where a long-running operation is (docs/operations.md). */
export type OperationState = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'timed_out' | 'interrupted';

/** One long-running operation as operation_status and operation_list report it. */
export interface OperationInfo {
  id: string;
  module: string;
  action: string;
  /** The uid that started it: only it and root may see or cancel it. */
  uid: number;
  state: OperationState;
  /** What it is doing now, as the action reported it. */
  phase: string | null;
  /** How far it has come, 0 to 1, when the action knows. */
  fraction: number | null;
  timeout_seconds: number;
  started_at: string;
  finished_at: string | null;
  /** When a finished operation and its result are forgotten. */
  expires_at: string | null;
  /** A cancel was asked for and the action has not stopped yet. */
  cancel_requested?: boolean;
  /** Why it did not succeed. */
  error?: string;
  code?: ErrorCode;
}

/**
 * The `data` of execute_command when the action is long-running: `data` holds a readable
 * description for a client that knows nothing of operations, `operation` the status.
 */
export interface OperationStarted {
  success: true;
  data: { operation_id: string; state: 'running'; message: string };
  operation: OperationInfo;
}

/** An operation id as rootd makes them; anything else is refused before it is looked up. */
export const OPERATION_ID_RE = /^op-[0-9a-f]{32}$/;
