/**
 * A typed client of the tuxsec-server operator API (/api/v1/) over HTTPS, used by the operator
 * subcommands and by tests. Built on node:https, not undici: every operator command starts a
 * process, and loading undici cost more than the request itself.
 */
import https from 'node:https';
import {
  FINAL_JOB_STATUSES,
  type AgentFilter,
  type AgentModeInput,
  type AgentView,
  type BatchSummary,
  type BatchView,
  type DashboardView,
  type DriftedHost,
  type FirewallView,
  type JobView,
  type TargetInput,
  type TemplateView,
  type TokenView,
  type UserView,
} from '../protocol/operator-api.ts';

export interface OperatorClientOptions {
  /** Base URL, e.g. https://127.0.0.1:8443 */
  url: string;
  adminToken: string;
  /** PEM trust anchor; the system roots when absent. */
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Most connections to the server at once. Default 4. */
  connections?: number;
  /** Per-request timeout in ms beyond any server-side wait. Default 30 s. */
  timeoutMs?: number;
}

export class OperatorError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'OperatorError';
  }
}

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export class OperatorClient {
  private readonly agent: https.Agent;
  private readonly base: URL;

  constructor(private readonly opts: OperatorClientOptions) {
    this.base = new URL(opts.url);
    if (this.base.protocol !== 'https:') throw new OperatorError(`cannot use server URL "${opts.url}": only https is allowed`, 0, 'invalid-request');
    this.agent = new https.Agent({ ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: true, keepAlive: true, maxSockets: opts.connections ?? 4 });
  }

  async call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, extraWaitMs = 0): Promise<T> {
    const { status, text } = await this.raw(method, path, body, extraWaitMs);
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new OperatorError(`cannot read response of ${method} ${path}: not JSON (HTTP ${status})`, status, 'invalid-json');
    }
    if (status >= 400 || data.success === false) {
      throw new OperatorError(String(data.error ?? `HTTP ${status}`), status, String(data.code ?? 'internal-error'));
    }
    return data as T;
  }

  /** A request whose answer is taken as text (status and body). */
  async raw(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, extraWaitMs = 0): Promise<{ status: number; text: string }> {
    const timeout = (this.opts.timeoutMs ?? 30_000) + extraWaitMs;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(new URL(`/api/v1${path}`, this.base), {
        method,
        agent: this.agent,
        headers: {
          authorization: `Bearer ${this.opts.adminToken}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
        timeout,
      });
      req.once('timeout', () => req.destroy(new Error(`cannot ${method} ${path}: no answer within ${timeout} ms`)));
      req.once('error', reject);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_RESPONSE_BYTES) {
            req.destroy();
            reject(new OperatorError(`cannot read response of ${method} ${path}: larger than ${MAX_RESPONSE_BYTES} bytes`, res.statusCode ?? 0, 'message-too-large'));
            return;
          }
          chunks.push(c);
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.once('error', reject);
      });
      req.end(payload);
    });
    return { status, text };
  }

  createToken(opts: { uses?: number; ttl?: number; labels?: Record<string, string>; name?: string } = {}) {
    return this.call<{ id: string; token: string; uses: number; expires_at: string; labels: Record<string, string>; name: string | null }>('POST', '/tokens', opts);
  }

  async labelAgent(id: string, change: { set?: Record<string, string>; remove?: string[] }): Promise<AgentView> {
    return (await this.call<{ agent: AgentView }>('POST', `/agents/${encodeURIComponent(id)}/labels`, change)).agent;
  }

  /** One page of agents matching the filter, and how many match in all. */
  async findAgents(filter: AgentFilter = {}): Promise<{ agents: AgentView[]; total: number }> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) {
      if (v === undefined) continue;
      for (const one of [v].flat()) q.append(k, String(one));
    }
    const s = q.toString();
    const r = await this.call<{ agents: AgentView[]; total?: number }>('GET', `/agents${s ? `?${s}` : ''}`);
    return { agents: r.agents, total: r.total ?? r.agents.length };
  }

  /** Every agent matching the filter, page by page. */
  async listAgents(filter: Omit<AgentFilter, 'limit' | 'offset'> = {}): Promise<AgentView[]> {
    const out: AgentView[] = [];
    for (;;) {
      const page = await this.findAgents({ ...filter, limit: 1000, offset: out.length });
      out.push(...page.agents);
      if (page.agents.length === 0 || out.length >= page.total) return out;
    }
  }

  dashboard(): Promise<DashboardView> {
    return this.call('GET', '/dashboard');
  }

  async listTokens(): Promise<TokenView[]> {
    return (await this.call<{ tokens: TokenView[] }>('GET', '/tokens')).tokens;
  }

  /** Revokes (deletes) an enrollment token; agents it enrolled stay. */
  async revokeToken(id: string): Promise<void> {
    await this.call('DELETE', `/tokens/${encodeURIComponent(id)}`);
  }

  /** One job per host of the target (a label, or a selection of agent ids). */
  async createBatch(b: { target: TargetInput; module: string; action: string; params?: Record<string, unknown>; expires_in?: number }): Promise<BatchView> {
    return (await this.call<{ batch: BatchView }>('POST', '/batches', b)).batch;
  }

  async getBatch(id: string): Promise<BatchView> {
    return (await this.call<{ batch: BatchView }>('GET', `/batches/${encodeURIComponent(id)}`)).batch;
  }

  async listBatches(opts: { limit?: number; offset?: number } = {}): Promise<BatchSummary[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return (await this.call<{ batches: BatchSummary[] }>('GET', `/batches${s ? `?${s}` : ''}`)).batches;
  }

  /** New jobs for the hosts whose latest job failed, expired, was interrupted or cancelled, or got no result. */
  retryBatch(id: string): Promise<{ batch: BatchView; retried: string[] }> {
    return this.call('POST', `/batches/${encodeURIComponent(id)}/retry-failed`, {});
  }

  cancelBatch(id: string): Promise<{ batch: BatchView; cancelled: string[]; cancel_requested: string[] }> {
    return this.call('POST', `/batches/${encodeURIComponent(id)}/cancel`, {});
  }

  async setAgentStatus(id: string, verb: 'approve' | 'reject'): Promise<AgentView> {
    return (await this.call<{ agent: AgentView }>('POST', `/agents/${encodeURIComponent(id)}/${verb}`, {})).agent;
  }

  /** Adds a push- or ssh-mode agent; `api_key` comes back when the server made it up. */
  addAgent(body: { name: string } & AgentModeInput): Promise<{ agent: AgentView; api_key?: string }> {
    return this.call('POST', '/agents', body);
  }

  setAgentMode(id: string, body: AgentModeInput): Promise<{ agent: AgentView; api_key?: string }> {
    return this.call('POST', `/agents/${encodeURIComponent(id)}/mode`, body);
  }

  /** A push-mode agent's `GET /health`, asked by the server. */
  async agentHealth(id: string): Promise<Record<string, unknown>> {
    return (await this.call<{ health: Record<string, unknown> }>('GET', `/agents/${encodeURIComponent(id)}/health`)).health;
  }

  async submitJob(job: { agent_id: string; module: string; action: string; params?: Record<string, unknown>; expires_in?: number }): Promise<JobView> {
    return (await this.call<{ job: JobView }>('POST', '/jobs', job)).job;
  }

  /** Gets a job; with `waitSeconds`, the server holds the request until it finishes (at most 300 s). */
  async getJob(id: string, waitSeconds = 0): Promise<JobView> {
    const w = Math.min(Math.max(waitSeconds, 0), 300);
    const q = w > 0 ? `?wait=${w}` : '';
    return (await this.call<{ job: JobView }>('GET', `/jobs/${encodeURIComponent(id)}${q}`, undefined, w * 1000)).job;
  }

  /** Waits until the job is finished or `seconds` pass; returns its latest state. */
  async waitJob(id: string, seconds: number): Promise<JobView> {
    const deadline = Date.now() + seconds * 1000;
    let job = await this.getJob(id);
    while (!FINAL_JOB_STATUSES.has(job.status)) {
      const left = (deadline - Date.now()) / 1000;
      if (left <= 0) break;
      job = await this.getJob(id, Math.min(Math.ceil(left * 1000) / 1000, 300));
    }
    return job;
  }

  /** Cancels a queued job at once; asks the agent of a sent or running one to cancel its operation. */
  async cancelJob(id: string): Promise<JobView> {
    return (await this.call<{ job: JobView }>('POST', `/jobs/${encodeURIComponent(id)}/cancel`, {})).job;
  }

  async listJobs(filter: { agent_id?: string; status?: string; limit?: number } = {}): Promise<JobView[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return (await this.call<{ jobs: JobView[] }>('GET', `/jobs${s ? `?${s}` : ''}`)).jobs;
  }

  async listUsers(): Promise<UserView[]> {
    return (await this.call<{ users: UserView[] }>('GET', '/users')).users;
  }

  /** Adds a user; `password` comes back when the server generated it (shown once). */
  addUser(body: { name: string; role: string; selector?: Record<string, string>; password?: string }): Promise<{ user: UserView; password?: string }> {
    return this.call('POST', '/users', body);
  }

  async removeUser(name: string): Promise<void> {
    await this.call('DELETE', `/users/${encodeURIComponent(name)}`);
  }

  setUserPassword(name: string, password?: string): Promise<{ user: UserView; password?: string }> {
    return this.call('POST', `/users/${encodeURIComponent(name)}/password`, password === undefined ? {} : { password });
  }

  async revokeUser(name: string): Promise<number> {
    return (await this.call<{ ended: number }>('POST', `/users/${encodeURIComponent(name)}/revoke`, {})).ended;
  }

  /** The audit log as the server formats it (json, jsonl or csv). */
  async audit(filter: { actor?: string; action?: string; agent?: string; since?: string; until?: string; limit?: number; format?: string }): Promise<string> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
    const path = `/audit${q.size ? `?${q.toString()}` : ''}`;
    const { status, text } = await this.raw('GET', path);
    if (status >= 400) {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not JSON: the status says it
      }
      throw new OperatorError(String(data.error ?? `HTTP ${status}`), status, String(data.code ?? 'internal-error'));
    }
    return text;
  }

  async listTemplates(): Promise<TemplateView[]> {
    return (await this.call<{ templates: TemplateView[] }>('GET', '/templates')).templates;
  }

  async getTemplate(id: string): Promise<TemplateView> {
    return (await this.call<{ template: TemplateView }>('GET', `/templates/${encodeURIComponent(id)}`)).template;
  }

  async createTemplate(body: { name: string; description?: string; zones: unknown }): Promise<TemplateView> {
    return (await this.call<{ template: TemplateView }>('POST', '/templates', body)).template;
  }

  async replaceTemplate(id: string, body: { name: string; description?: string; zones: unknown }): Promise<TemplateView> {
    return (await this.call<{ template: TemplateView }>('PUT', `/templates/${encodeURIComponent(id)}`, body)).template;
  }

  async deleteTemplate(id: string): Promise<void> {
    await this.call('DELETE', `/templates/${encodeURIComponent(id)}`);
  }

  /** Queues the template's dry run (preview) or its application on each host of the target: a batch, one job per host. */
  async runTemplate(id: string, verb: 'preview' | 'apply', body: { target: TargetInput; permanent?: boolean; confirm_timeout?: number; expires_in?: number }): Promise<BatchView> {
    return (await this.call<{ batch: BatchView }>('POST', `/templates/${encodeURIComponent(id)}/${verb}`, body)).batch;
  }

  /** Queues a firewall hash job (get_state_hash) on each active host within reach, or of `target`: a batch. */
  async checkFirewalls(body: { target?: TargetInput; expires_in?: number } = {}): Promise<BatchView> {
    return (await this.call<{ batch: BatchView }>('POST', '/firewall/check', body)).batch;
  }

  async driftedFirewalls(): Promise<DriftedHost[]> {
    return (await this.call<{ drifted: DriftedHost[] }>('GET', '/firewall/drift')).drifted;
  }

  async acceptFirewallBaseline(agentId: string): Promise<FirewallView> {
    return (await this.call<{ firewall: FirewallView }>('POST', `/agents/${encodeURIComponent(agentId)}/firewall/baseline`, {})).firewall;
  }

  /** Closes the connections; call it once no call is running. */
  async close(): Promise<void> {
    this.agent.destroy();
  }
}
