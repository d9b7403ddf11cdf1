/**
 * How tuxsec-server hands a job to an agent it calls itself (issue 9): push mode over mutual TLS,
 * SSH mode through the OpenSSH client and tuxsec-shell. Pull-mode agents fetch their jobs instead.
 * Every transport carries the same job envelope and yields the same result shape, so a job's states
 * and its stored result do not depend on the mode.
 */
import type { JobEnvelope, PushJobState } from '../../protocol/jobs.ts';
import type { IncomingResult } from '../storage/storage.ts';

export type AgentMode = 'pull' | 'push' | 'ssh';
export const AGENT_MODES: readonly AgentMode[] = ['pull', 'push', 'ssh'];

/** Where a push-mode agent listens and how the server trusts it. */
export interface PushEndpoint {
  /** `https://host:port` of the agent's listener. */
  url: string;
  /** PEM file of the CA that signed the agent's certificate. */
  caFile: string;
}

/** How the server reaches an SSH-mode agent. */
export interface SshEndpoint {
  host: string;
  port: number;
  /** The login user on the agent (default `tuxsec`). */
  user: string;
  /** The agent's host key as one known_hosts line: the only key accepted (pinned). */
  knownHost: string;
}

/**
 * Could not hand the job over or read its answer. `retryable`: try again later (the job id makes a
 * repeat safe). Otherwise the message becomes the job's failed result, with `code` (an error
 * registry code; `delivery-failed` when absent).
 */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface Transport {
  /**
   * Runs one job on the agent and resolves with its result (the agent's executor and journal make
   * a repeated job id return the stored result instead of running again). Rejects with
   * DeliveryError when the job could not be delivered or the answer could not be read.
   */
  execute(job: JobEnvelope, signal: AbortSignal): Promise<IncomingResult>;
  /**
   * A running job's state while `execute` waits (push mode's `GET /jobs/<id>`); null when the agent
   * cannot tell (an agent without the extension).
   */
  jobState?(jobId: string, signal: AbortSignal): Promise<PushJobState | null>;
  /** Asks the agent to cancel a running job's operation; true when it did. */
  cancelJob?(jobId: string, signal: AbortSignal): Promise<boolean>;
  /** Closes kept-alive connections. */
  close(): Promise<void>;
}
