/**
 * Stable error codes. On the wire an error keeps the compatible shape
 * (`type: "error"`, `data.error` = message) and adds `data.code` with one of these.
 */
export const ErrorCodes = {
  /** The request line was not JSON. */
  invalidJson: 'invalid-json',
  /** The request was JSON but not a valid request object (shape, depth, size). */
  invalidRequest: 'invalid-request',
  /** The request line was longer than max_message_bytes. */
  messageTooLarge: 'message-too-large',
  /** The request `type` is not one the daemon knows. */
  unknownType: 'unknown-type',
  /** No module of that name is registered and available. */
  moduleNotFound: 'module-not-found',
  /** The module exists but failed to initialize or was disabled. */
  moduleUnavailable: 'module-unavailable',
  /** The module has no action of that name. */
  actionNotFound: 'action-not-found',
  /** Parameters failed validation; the message names the parameter and the value. */
  invalidParams: 'invalid-params',
  /** The peer, or the operator policy, does not allow this. */
  permissionDenied: 'permission-denied',
  /** The action did not finish within request_timeout. */
  timeout: 'timeout',
  /** Too many requests from this uid; retry later. */
  rateLimited: 'rate-limited',
  /** The daemon is shutting down and takes no new work. */
  shuttingDown: 'shutting-down',
  /** The action ran and reported failure. */
  actionFailed: 'action-failed',
  /** An unexpected failure inside the daemon. */
  internal: 'internal-error',
  /** The client could not reach rootd (socket missing, refused, closed). */
  rootdUnavailable: 'rootd-unavailable',
  /** rootd's connection closed after the request was sent, before the answer: it may have run; never sent again. */
  interrupted: 'interrupted',
  /** A thing the action refers to does not exist (zone, service, job...). */
  notFound: 'not-found',
  /** firewalld is installed but not running. */
  firewalldNotRunning: 'firewalld-not-running',
  /** A required system service (systemd, D-Bus) is not present on this host. */
  serviceUnavailable: 'service-unavailable',
  /** The request conflicts with the current state (e.g. a pending confirmation). */
  conflict: 'conflict',
  /** Pull mode: the enrollment token is missing, unknown, expired or used up. */
  invalidToken: 'invalid-token',
  /** Pull mode: agent_id/api_key (or the admin token) do not match. */
  unauthorized: 'unauthorized',
  /** Pull mode: the agent's machine_id is already enrolled; an operator must approve it. */
  pendingApproval: 'pending-approval',
  /** Pull mode: an operator rejected this agent. */
  agentRejected: 'agent-rejected',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error with a stable code, safe to send to a client. */
export class TuxsecError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'TuxsecError';
    this.code = code;
    this.details = details;
  }
}

export function isTuxsecError(e: unknown): e is TuxsecError {
  return e instanceof TuxsecError;
}
