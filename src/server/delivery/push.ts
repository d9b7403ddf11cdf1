/**
 * The push transport: tuxsec-server calls a push-mode agent's `POST /execute` (INTEROP section 3)
 * over mutual TLS, on a kept-alive undici Pool per agent. The server presents its own client
 * certificate (agent_client_cert) and trusts only the CA configured for that agent, never the
 * system roots. The job's id travels in the body, so a redelivered job is answered from the
 * agent's journal instead of running again.
 */
import { buildConnector, Pool } from 'undici';
import { terminalSafe, terminalSafeJson } from '../../common/terminal-text.ts';
import { ErrorCodes } from '../../protocol/errors.ts';
import { ExecuteReply, HealthReply, PUSH_PATH, PushCancelReply, PushJobState, quote, schemaError, type JobEnvelope } from '../../protocol/jobs.ts';
import { findPoisonKey, nestingDepth } from '../../protocol/json.ts';
import { BODY_LIMIT } from '../plugins/body.ts';
import { incomingResult, type IncomingResult } from '../storage/storage.ts';
import { readCaFile } from './endpoint.ts';
import { DeliveryError, type PushEndpoint, type Transport } from './transport.ts';

export interface PushTransportOptions {
  /** The server's client certificate and key (PEM); absent, agents that require one refuse it. */
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** How long a job may run before its answer must have come, ms. */
  timeoutMs: number;
  /** Most connections to this agent (the worker's per-agent concurrency). */
  connections: number;
}

/** An answer larger than a pull-mode result body would be refused there too. */
const MAX_RESPONSE_BYTES = BODY_LIMIT;
const CONNECT_TIMEOUT_MS = 10_000;
/** A look at a running job (`/jobs/<id>`) is quick, whatever the job's own timeout. */
const JOB_LOOK_TIMEOUT_MS = 10_000;
/** What a push agent accepts from one client (src/agent/push.ts DEFAULT_LIMITS.connectionsPerClient). */
const AGENT_CONNECTIONS_PER_CLIENT = 8;
/** Deepest answer read, as for a pull-mode request body: JSON.parse of deeper text can overflow the stack. */
const MAX_ANSWER_DEPTH = 64;

/** A failure that delivering again cannot cure: it becomes the job's failed result. */
const refused = (message: string, code: string): DeliveryError => new DeliveryError(message, false, code);

/**
 * TLS failures of verification or of the peer's alert (unknown CA, no or bad client certificate,
 * wrong name, expired): the same certificates fail the same way on every attempt.
 */
function isTlsRefusal(code: string): boolean {
  return /CERT|^ERR_SSL_|^ERR_TLS_|^UNABLE_TO_|^DEPTH_ZERO|^SELF_SIGNED|^INVALID_CA/.test(code);
}

function errorCode(e: unknown): string {
  const err = e as { code?: unknown; cause?: { code?: unknown } };
  if (typeof err.cause?.code === 'string' && err.cause.code !== '') return err.cause.code;
  return typeof err.code === 'string' ? err.code : '';
}

function errorText(e: unknown): string {
  const err = e as Error & { cause?: Error };
  const msg = err.cause?.message && err.cause.message !== err.message ? `${err.message}: ${err.cause.message}` : String(err.message);
  return msg.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** What an HTTP status the agent answered means for the job. */
function refusalOf(status: number, agentError: string): DeliveryError {
  // The agent's words are stored and printed: controls, C1 and bidi characters shown as escapes.
  const why = agentError === '' ? `HTTP ${status}` : `HTTP ${status}: ${terminalSafe(agentError.slice(0, 300))}`;
  switch (status) {
    case 401:
      return refused(`cannot deliver job: the agent refused the api_key (${why}); set the agent's key again with "agents set-mode"`, ErrorCodes.unauthorized);
    case 403:
      return refused(`cannot deliver job: the agent refused the request (${why})`, ErrorCodes.permissionDenied);
    case 409:
      return refused(`cannot deliver job: the agent refused it as a conflict (${why})`, ErrorCodes.conflict);
    case 429:
    case 502:
    case 503:
    case 504:
    case 500:
      // The agent is busy, stopping or failed inside: the job id makes a retry safe.
      return new DeliveryError(`cannot deliver job: the agent answered ${why}`, true);
    default:
      return refused(`cannot deliver job: the agent answered ${why}`, ErrorCodes.deliveryFailed);
  }
}

/** The result of a checked `/execute` reply, in the shape a pull-mode agent reports. */
export function resultOfReply(job: JobEnvelope, r: ExecuteReply): IncomingResult {
  const { result, id: _id, ...rest } = r;
  return incomingResult({ ...rest, command_id: job.id, ...(r.success ? { output: result } : {}) });
}

/** A TLS alert this long before a request fails explains its failure. */
const TLS_ALERT_WINDOW_MS = 5000;

export class PushTransport implements Transport {
  private readonly pool: Pool;
  private readonly timeoutMs: number;
  /**
   * The last TLS refusal seen on a connection. In TLS 1.3 the agent checks the client certificate
   * after the handshake; its alert reaches the socket, while undici reports only "other side closed".
   */
  private tlsAlert: { code: string; text: string; at: number } | null = null;

  /** Reads the agent's CA file now; a DeliveryError when it cannot. */
  constructor(
    readonly endpoint: PushEndpoint,
    private readonly apiKey: string,
    opts: PushTransportOptions,
  ) {
    let ca: Buffer;
    try {
      ca = readCaFile(endpoint.caFile);
    } catch (e) {
      throw refused((e as Error).message, ErrorCodes.deliveryFailed);
    }
    this.timeoutMs = opts.timeoutMs;
    const base = buildConnector({
      ca,
      cert: opts.clientCert,
      key: opts.clientKey,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      timeout: CONNECT_TIMEOUT_MS,
    });
    const connect: buildConnector.connector = (o, cb) =>
      base(o, (err, sock) => {
        sock?.on('error', (e: Error) => {
          const code = errorCode(e);
          if (isTlsRefusal(code)) this.tlsAlert = { code, text: errorText(e), at: Date.now() };
        });
        if (err) cb(err, null);
        else cb(null, sock!);
      });
    this.pool = new Pool(endpoint.url, {
      // One more than the deliveries, so a look at a running job is not queued behind the held
      // `/execute` requests (unless they already take all the agent accepts).
      connections: Math.min(opts.connections + 1, AGENT_CONNECTIONS_PER_CLIENT),
      pipelining: 1,
      keepAliveTimeout: 60_000,
      connect,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  /** Sends one request and reads at most MAX_RESPONSE_BYTES of its answer; with `absent`, a 404 is null. */
  private async call(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal, absent = false): Promise<unknown> {
    // headersTimeout/bodyTimeout measure idle time only: an agent sending a byte now and then would
    // hold a delivery slot for ever. This deadline covers the whole request, answer included.
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const both = AbortSignal.any([signal, deadline]);
    const timedOut = (): DeliveryError =>
      new DeliveryError(`cannot deliver job to ${this.endpoint.url}: no complete answer within ${this.timeoutMs} ms (delivery_timeout)`, true, ErrorCodes.timeout);
    let res;
    try {
      res = await this.pool.request({
        method,
        path,
        signal: both,
        headers: { 'x-api-key': this.apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (e) {
      if (deadline.aborted) throw timedOut();
      const code = errorCode(e);
      if (isTlsRefusal(code)) {
        throw refused(`cannot deliver job to ${this.endpoint.url}: TLS refused (${code}): ${errorText(e)}`, ErrorCodes.deliveryFailed);
      }
      const alert = this.tlsAlert;
      if (alert !== null && Date.now() - alert.at < TLS_ALERT_WINDOW_MS && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) {
        throw refused(`cannot deliver job to ${this.endpoint.url}: TLS refused by the agent (${alert.code}): ${alert.text}`, ErrorCodes.deliveryFailed);
      }
      throw new DeliveryError(`cannot reach agent at ${this.endpoint.url}: ${code === '' ? '' : `${code}: `}${errorText(e)}`, true);
    }
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res.body as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > MAX_RESPONSE_BYTES) {
          res.body.destroy();
          throw refused(`cannot read the answer of agent at ${this.endpoint.url}: larger than ${MAX_RESPONSE_BYTES} bytes`, ErrorCodes.messageTooLarge);
        }
        chunks.push(c);
      }
    } catch (e) {
      if (e instanceof DeliveryError) throw e;
      if (deadline.aborted) throw timedOut();
      throw new DeliveryError(`cannot read the answer of agent at ${this.endpoint.url}: ${errorText(e)}`, true);
    }
    const raw = Buffer.concat(chunks);
    if (nestingDepth(raw, MAX_ANSWER_DEPTH) > MAX_ANSWER_DEPTH) {
      throw refused(`cannot read the answer of agent at ${this.endpoint.url}: JSON nested deeper than ${MAX_ANSWER_DEPTH}`, ErrorCodes.deliveryFailed);
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      json = undefined;
    }
    if (absent && res.statusCode === 404) return null;
    const poison = findPoisonKey(json);
    if (poison !== null) {
      throw refused(`cannot read the answer of agent at ${this.endpoint.url}: forbidden key ${terminalSafeJson(quote(poison))}`, ErrorCodes.deliveryFailed);
    }
    if (res.statusCode !== 200) {
      const err = (json as { error?: unknown } | undefined)?.error;
      throw refusalOf(res.statusCode, typeof err === 'string' ? err : '');
    }
    if (json === undefined) throw refused(`cannot read the answer of agent at ${this.endpoint.url}: not JSON`, ErrorCodes.deliveryFailed);
    return json;
  }

  async execute(job: JobEnvelope, signal: AbortSignal): Promise<IncomingResult> {
    const json = await this.call('POST', PUSH_PATH.execute, JSON.stringify(job), signal);
    const why = schemaError(ExecuteReply, json);
    if (why !== null) throw refused(`cannot read the answer of agent at ${this.endpoint.url}: ${terminalSafeJson(why)}`, ErrorCodes.deliveryFailed);
    const reply = json as ExecuteReply;
    if (reply.id !== undefined && reply.id !== job.id) {
      throw refused(`cannot read the answer of agent at ${this.endpoint.url}: it answered for job ${terminalSafeJson(quote(reply.id))}, not ${quote(job.id)}`, ErrorCodes.deliveryFailed);
    }
    return resultOfReply(job, reply);
  }

  /** The agent's `GET /health`, checked. */
  async health(signal: AbortSignal): Promise<HealthReply> {
    const json = await this.call('GET', PUSH_PATH.health, undefined, signal);
    const why = schemaError(HealthReply, json);
    if (why !== null) throw refused(`cannot read the health of agent at ${this.endpoint.url}: ${terminalSafeJson(why)}`, ErrorCodes.deliveryFailed);
    return json as HealthReply;
  }

  /** The agent's `GET /jobs/<id>`, checked; null from an agent without it (404). */
  async jobState(jobId: string, signal: AbortSignal): Promise<PushJobState | null> {
    const json = await this.call('GET', PUSH_PATH.job(jobId), undefined, AbortSignal.any([signal, AbortSignal.timeout(JOB_LOOK_TIMEOUT_MS)]), true);
    if (json === null) return null;
    const why = schemaError(PushJobState, json);
    if (why !== null) throw refused(`cannot read the state of job ${quote(jobId)} on agent at ${this.endpoint.url}: ${terminalSafeJson(why)}`, ErrorCodes.deliveryFailed);
    return json as PushJobState;
  }

  /** The agent's `POST /jobs/<id>/cancel`: true when it asked rootd to stop the job's operation. */
  async cancelJob(jobId: string, signal: AbortSignal): Promise<boolean> {
    const json = await this.call('POST', PUSH_PATH.cancel(jobId), undefined, AbortSignal.any([signal, AbortSignal.timeout(JOB_LOOK_TIMEOUT_MS)]), true);
    if (json === null) return false;
    const why = schemaError(PushCancelReply, json);
    if (why !== null) throw refused(`cannot read the answer to cancelling job ${quote(jobId)} on agent at ${this.endpoint.url}: ${terminalSafeJson(why)}`, ErrorCodes.deliveryFailed);
    return (json as PushCancelReply).cancelled;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
