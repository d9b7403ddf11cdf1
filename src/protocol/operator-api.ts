/**
 * The objects of the operator API (/api/v1/) as its clients read them: the typed client the CLI and
 * the tests use (src/server/operator-client.ts) and the web console (console/src/api.ts). One set of
 * types for both, so a field the server renames breaks both at compile time. The server validates
 * and serializes with its TypeBox schemas (src/server/schemas.ts, src/server/routes/*.ts).
 * Imports nothing: the console imports these as types only, and its bundle gains nothing.
 */

export type Role = 'admin' | 'operator' | 'viewer';

/** The logged-in console user (POST and GET /session). */
export interface SessionUser {
  name: string;
  role: Role;
  /** Hosts an operator or viewer reaches: those carrying every pair; null for all. */
  selector: Record<string, string> | null;
}

/** online, stale, offline, pending or rejected (docs/fleet.md). */
export type AgentState = 'online' | 'stale' | 'offline' | 'pending' | 'rejected';

export interface AgentView {
  id: string;
  status: string;
  /** Servers before issue 11 send none. */
  state?: AgentState;
  machine_id: string | null;
  hostname: string;
  ip: string | null;
  os_info: unknown;
  modules: string[];
  version: string | null;
  features?: string[];
  created_at: string | null;
  last_seen: string | null;
  mode: string;
  endpoint?: unknown;
  labels: Record<string, string>;
}

/** A search of the agent list (GET /agents). */
export interface AgentFilter {
  q?: string;
  /** KEY=VALUE, each must match. */
  label?: string[];
  state?: string;
  mode?: string;
  os?: string;
  limit?: number;
  offset?: number;
}

/** A delivery mode and what it needs (POST /agents, POST /agents/:id/mode). */
export interface AgentModeInput {
  mode: 'pull' | 'push' | 'ssh';
  url?: string;
  ca_file?: string;
  api_key?: string;
  host?: string;
  port?: number;
  user?: string;
  known_host?: string;
}

/** What an agent answered for a job (its envelope's fields; `output` is the action's). */
export interface JobResult {
  success?: boolean;
  output?: unknown;
  error?: string | null;
  code?: string;
  status?: string;
  [k: string]: unknown;
}

export interface JobView {
  id: string;
  agent_id: string;
  module: string;
  action: string;
  params: Record<string, unknown>;
  status: string;
  created_at: string;
  sent_at: string | null;
  finished_at: string | null;
  expires_at: string;
  deliveries: number;
  result: JobResult | null;
  /** While it runs as a rootd operation (servers before issue 10 send none). */
  progress?: { operation_id: string; phase: string | null; fraction: number | null; updated_at: string } | null;
  cancel_requested_at?: string | null;
  /** The batch (multi-host job) it belongs to (servers before issue 11 send none). */
  batch_id?: string | null;
}

/** The states after which a job changes no more. */
export const FINAL_JOB_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'interrupted', 'expired', 'cancelled', 'delivered-without-result']);

/** Hosts a batch, a template or a check goes to: these agents, or those carrying every label pair. */
export interface TargetInput {
  agents?: string[];
  label?: Record<string, string>;
}

/** A batch as GET /batches lists it. */
export interface BatchSummary {
  id: string;
  created_at: string | null;
  created_by: string;
  module: string;
  action: string;
  params: Record<string, unknown>;
  /** In a list, a selection is `{agents_count}`. */
  target: TargetInput & { agents_count?: number };
  expires_in: number;
  counts: Record<string, number> & { total: number };
}

/** A batch with each host's latest job (GET /batches/:id and the replies that make or change one). */
export interface BatchView extends BatchSummary {
  hosts: Array<{ agent_id: string; hostname: string | null; job: JobView }>;
}

/** A host whose firewall hash differs from its accepted baseline (GET /firewall/drift, the dashboard). */
export interface DriftedHost {
  agent_id: string;
  hostname: string;
  baseline: string;
  current: string;
  checked_at: string;
}

/** One agent's firewall record (GET /agents/:id/firewall, POST /agents/:id/firewall/baseline). */
export interface FirewallView {
  agent_id: string;
  baseline: string | null;
  baseline_at: string | null;
  current: string | null;
  checked_at: string | null;
  drifted: boolean;
  baseline_refresh_pending: boolean;
}

export interface DashboardView {
  agents: Record<AgentState | 'total', number>;
  recent_jobs: JobView[];
  recent_failures: JobView[];
  drifted: DriftedHost[];
}

export interface TokenView {
  id: string;
  name: string | null;
  labels: Record<string, string>;
  uses: number;
  uses_left: number;
  created_at: string | null;
  expires_at: string | null;
  expired: boolean;
}

export interface UserView {
  name: string;
  role: Role;
  selector: Record<string, string> | null;
  created_at: string;
  updated_at: string;
  sessions: number;
}

export interface TemplateZone {
  services?: string[];
  ports?: string[];
  rich_rules?: string[];
}

export interface TemplateView {
  id: string;
  name: string;
  description: string;
  zones: Record<string, TemplateZone>;
  created_at: string;
  updated_at: string;
}
