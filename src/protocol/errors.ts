/**
 * The error registry: every stable error code, once, with the HTTP status it is answered with
 * (tuxsec-server; rootd's socket protocol has no status). On the wire an error keeps the
 * compatible shape (`type: "error"`, `data.error` = message) and adds `data.code` with one of these.
 */
export const ERROR_REGISTRY = {
  /** The request line was not JSON. */
  invalidJson: { code: 'invalid-json', http: 400 },
  /** The request was JSON but not a valid request object (shape, depth, size). */
  invalidRequest: { code: 'invalid-request', http: 400 },
  /** The request line was longer than max_message_bytes. */
  messageTooLarge: { code: 'message-too-large', http: 413 },
  /** The request `type` is not one the daemon knows. */
  unknownType: { code: 'unknown-type', http: 400 },
  /** No module of that name is registered and available. */
  moduleNotFound: { code: 'module-not-found', http: 404 },
  /** The module exists but failed to initialize or was disabled. */
  moduleUnavailable: { code: 'module-unavailable', http: 503 },
  /** The module has no action of that name. */
  actionNotFound: { code: 'action-not-found', http: 404 },
  /** Parameters failed validation; the message names the parameter and the value. */
  invalidParams: { code: 'invalid-params', http: 400 },
  /** The peer, or the operator policy, does not allow this. */
  permissionDenied: { code: 'permission-denied', http: 403 },
  /** The action did not finish within request_timeout. */
  timeout: { code: 'timeout', http: 408 },
  /** Too many requests from this uid; retry later. */
  rateLimited: { code: 'rate-limited', http: 429 },
  /** The daemon is shutting down and takes no new work. */
  shuttingDown: { code: 'shutting-down', http: 503 },
  /** The action ran and reported failure. */
  actionFailed: { code: 'action-failed', http: 500 },
  /** An unexpected failure inside the daemon. */
  internal: { code: 'internal-error', http: 500 },
  /** The client could not reach rootd (socket missing, refused, closed). */
  rootdUnavailable: { code: 'rootd-unavailable', http: 503 },
  /** A thing the action refers to does not exist (zone, service, job...). */
  notFound: { code: 'not-found', http: 404 },
  /** firewalld is installed but not running. */
  firewalldNotRunning: { code: 'firewalld-not-running', http: 503 },
  /** A required system service (systemd, D-Bus) is not present on this host. */
  serviceUnavailable: { code: 'service-unavailable', http: 503 },
  /** The request conflicts with the current state (e.g. a pending confirmation). */
  conflict: { code: 'conflict', http: 409 },
  /** Pull mode: the enrollment token is missing, unknown, expired or used up. */
  invalidToken: { code: 'invalid-token', http: 401 },
  /** Pull mode: agent_id/api_key (or the admin token) do not match. */
  unauthorized: { code: 'unauthorized', http: 401 },
  /** Pull mode: the agent's machine_id is already enrolled; an operator must approve it. */
  pendingApproval: { code: 'pending-approval', http: 403 },
  /** Pull mode: an operator rejected this agent. */
  agentRejected: { code: 'agent-rejected', http: 403 },
  /** The action was started but its outcome is unknown: its runner died or its connection closed. */
  interrupted: { code: 'interrupted', http: 500 },
  /** Push mode: a job id seen before came with another module, action or params; neither is run. */
  jobIdReused: { code: 'job-id-reused', http: 409 },
  /** Pull mode: an agent took the job but reported no result within result_timeout. */
  noResult: { code: 'no-result', http: 504 },
  /** tuxsec-server could not hand a job to a push- or ssh-mode agent, or could not read its answer. */
  deliveryFailed: { code: 'delivery-failed', http: 502 },
  /** A long-running operation was cancelled by its caller (or root) before it finished. */
  cancelled: { code: 'cancelled', http: 409 },
  /** A long-running operation has no result yet: it is still running. */
  operationRunning: { code: 'operation-running', http: 409 },
} as const;

type Registry = typeof ERROR_REGISTRY;

/** The codes of the registry by name: `ErrorCodes.notFound` is `'not-found'`. */
export const ErrorCodes = Object.fromEntries(Object.entries(ERROR_REGISTRY).map(([k, v]) => [k, v.code])) as {
  readonly [K in keyof Registry]: Registry[K]['code'];
};

export type ErrorCode = Registry[keyof Registry]['code'];

const STATUS_OF = new Map<string, number>(Object.values(ERROR_REGISTRY).map((e) => [e.code, e.http]));

/** The HTTP status a code is answered with. */
export function httpStatus(code: ErrorCode): number {
  return STATUS_OF.get(code) ?? 500;
}

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

/**
 * A request that failed over HTTP. tuxsec-server throws it (answered as `{success: false, error,
 * code}` with `status`); the agent's client raises it for an answer it did not accept, with
 * `status` 0 when no answer came (network, TLS, timeout) and the answer's JSON `body` when it had one.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: ErrorCode | null;
  /** Seconds the client should wait before trying again (Retry-After). */
  readonly retryAfter: number | null;
  readonly body: Record<string, unknown> | null;

  constructor(message: string, status: number, opts: { code?: ErrorCode; retryAfter?: number | null; body?: Record<string, unknown> | null } = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = opts.code ?? null;
    this.retryAfter = opts.retryAfter ?? null;
    this.body = opts.body ?? null;
  }

  /** The error of a registry code, with the code's HTTP status unless `status` says otherwise. */
  static of(code: ErrorCode, message: string, opts: { status?: number; retryAfter?: number } = {}): HttpError {
    return new HttpError(message, opts.status ?? httpStatus(code), { code, retryAfter: opts.retryAfter ?? null });
  }
}
