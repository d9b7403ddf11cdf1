/**
 * tuxsec-server: the reference control server (`serve`) and its operator commands, which call the
 * operator API over HTTPS with the admin token from the same config file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { terminalSafe, terminalSafeJson } from '../common/terminal-text.ts';
import { ConfigError } from '../common/config-file.ts';
import { loadConfig, type ServerConfig } from './config.ts';
import { FINAL_JOB_STATUSES, type AgentModeInput, type AgentView, type BatchView, type JobView } from '../protocol/operator-api.ts';
import { OperatorClient, OperatorError } from './operator-client.ts';
import { PASSWORD_MAX } from './passwords.ts';
import { parseLabelWords } from './operators.ts';
import { templateCommands } from './cli-templates.ts';
import { NAME_PATTERN } from './schemas.ts';

const DEFAULT_CONFIG = '/etc/tuxsec-server/server.yaml';

interface CommonOpts {
  config: string;
  json?: boolean;
  ca?: string;
  server?: string;
}

class UsageError extends Error {}

/** Prints a result. Agents choose much of this text: `human` passes every field through `t`. */
function out(opts: CommonOpts, data: unknown, human: () => string): void {
  process.stdout.write(opts.json ? `${terminalSafeJson(JSON.stringify(data, null, 2))}\n` : `${human()}\n`);
}

/** A field for the terminal (see terminal-text.ts). */
const t = (v: unknown): string => terminalSafe(String(v));

function serverUrl(cfg: ServerConfig, override?: string): string {
  if (override) return override;
  if (cfg.server_url) return cfg.server_url;
  const host = cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host === '::' ? '::1' : cfg.host;
  return `https://${host.includes(':') ? `[${host}]` : host}:${cfg.port}`;
}

function client(opts: CommonOpts): OperatorClient {
  const cfg = loadConfig(opts.config);
  const caFile = opts.ca ?? cfg.ca_cert;
  let ca: Buffer | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (e) {
      throw new ConfigError(`cannot read CA certificate "${caFile}": ${(e as Error).message}`);
    }
  }
  return new OperatorClient({
    url: serverUrl(cfg, opts.server),
    adminToken: cfg.adminToken,
    ca,
    cert: cfg.client_cert === undefined ? undefined : readFileSync(cfg.client_cert),
    key: cfg.client_key === undefined ? undefined : readFileSync(cfg.client_key),
  });
}

/** Runs an operator command with a client, closing it after. */
async function withClient(opts: CommonOpts, fn: (c: OperatorClient) => Promise<number | void>): Promise<void> {
  const c = client(opts);
  try {
    const code = await fn(c);
    if (typeof code === 'number') process.exitCode = code;
  } finally {
    await c.close();
  }
}

/** `k=v`: the value is tried as JSON first (`80`, `true`, `"x"`), else taken as a string. */
function parseParam(s: string, acc: Record<string, unknown> = {}): Record<string, unknown> {
  const i = s.indexOf('=');
  if (i <= 0) throw new UsageError(`cannot use --param "${s}": expected key=value`);
  const k = s.slice(0, i);
  const raw = s.slice(i + 1);
  // The key becomes an own property either way; only this one could reach a prototype when the object is copied.
  if (k === '__proto__') throw new UsageError(`cannot use --param "${s}": forbidden key`);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    v = raw;
  }
  return { ...acc, [k]: v };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function jobText(j: JobView): string {
  const lines = [
    `job ${t(j.id)}: ${t(j.status)}`,
    `  agent ${t(j.agent_id)}, ${t(j.module)} ${t(j.action)} ${terminalSafeJson(JSON.stringify(j.params))}`,
    `  created ${t(j.created_at)}, sent ${t(j.sent_at ?? '-')}, finished ${t(j.finished_at ?? '-')}, expires ${t(j.expires_at)}`,
  ];
  const p = j.progress;
  if (p && !FINAL_JOB_STATUSES.has(j.status)) {
    const pct = p.fraction === null ? '' : ` ${Math.round(p.fraction * 100)}%`;
    lines.push(`  progress: ${t(p.phase ?? 'running')}${pct} (operation ${t(p.operation_id)}, reported ${t(p.updated_at)})`);
  }
  if (j.cancel_requested_at && !FINAL_JOB_STATUSES.has(j.status)) lines.push(`  cancel requested ${t(j.cancel_requested_at)}: waiting for the agent`);
  if (j.result) {
    if (j.result.error) lines.push(`  error: ${t(j.result.error)}${j.result.code ? ` (${t(j.result.code)})` : ''}`);
    if (j.result.output !== undefined) lines.push(terminalSafeJson(JSON.stringify(j.result.output, null, 2)));
  }
  return lines.join('\n');
}

function agentsText(agents: AgentView[]): string {
  if (agents.length === 0) return 'no agents';
  return table([
    ['ID', 'STATUS', 'HOSTNAME', 'IP', 'VERSION', 'LAST SEEN', 'MODE', 'STATE', 'LABELS'],
    ...agents.map((a) => [a.id, a.status, a.hostname, a.ip ?? '-', a.version ?? '-', a.last_seen ?? '-', a.mode ?? 'pull', a.state ?? '-', labelsText(a.labels) || '-'].map(t)),
  ]);
}

const labelsText = (labels: Record<string, string> | undefined): string =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** `KEY=VALUE` (and `KEY-`) words checked, or a usage error naming the bad one. */
function labelWords(words: string[], allowRemove = false): { set: Record<string, string>; remove: string[] } {
  try {
    return parseLabelWords(words, allowRemove);
  } catch (e) {
    throw new UsageError(`cannot use labels: ${(e as Error).message}`);
  }
}

/** Where the server delivers to an agent, in words. */
function endpointText(a: AgentView): string {
  const e = a.endpoint as Record<string, unknown> | null | undefined;
  if (!e) return `${t(a.mode ?? 'pull')} mode`;
  if (typeof e.url === 'string') return `push mode, ${t(e.url)} (agent CA ${t(e.ca_file)})`;
  return `ssh mode, ${t(e.user)}@${t(e.host)} port ${t(e.port)}`;
}

interface ModeOpts {
  url?: string;
  agentCa?: string;
  apiKeyFile?: string;
  host?: string;
  port?: number;
  user?: string;
  knownHost?: string;
}

function modeOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'push: the agent\'s listener, https://host:port')
    .option('--agent-ca <file>', 'push: CA certificate that signed the agent\'s certificate (read by the server)')
    .option('--api-key-file <file>', 'push: file with the api_key the agent expects (default: a new one, printed once)')
    .option('--host <host>', 'ssh: the agent\'s host')
    .option('--port <port>', 'ssh: its sshd port (default 22)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`cannot use --port "${v}": expected 1 to 65535`);
      return n;
    })
    .option('--user <user>', 'ssh: the login user (default tuxsec)')
    .option('--known-host <line>', 'ssh: the agent\'s host key as one known_hosts line (pinned)');
}

function modeInput(mode: string, o: ModeOpts): AgentModeInput {
  if (mode !== 'pull' && mode !== 'push' && mode !== 'ssh') throw new UsageError(`cannot use mode "${mode}": expected pull, push or ssh`);
  let apiKey: string | undefined;
  if (o.apiKeyFile !== undefined) {
    try {
      apiKey = readFileSync(o.apiKeyFile, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`cannot read --api-key-file "${o.apiKeyFile}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return {
    mode,
    url: o.url,
    // The server reads the file: an absolute path means the same file wherever the command ran from.
    ca_file: o.agentCa === undefined ? undefined : path.resolve(o.agentCa),
    api_key: apiKey,
    host: o.host,
    port: o.port,
    user: o.user,
    known_host: o.knownHost,
  };
}

/** The reply of add / set-mode: the agent, and a new api_key shown this once. */
function keyedAgentText(a: AgentView, apiKey: string | undefined): string {
  const lines = [`agent ${t(a.id)} (${t(a.hostname)}): ${endpointText(a)}`];
  if (apiKey !== undefined) {
    lines.push('api_key for the agent\'s config (api_key_file), shown only now:', t(apiKey));
  }
  return lines.join('\n');
}

function common(cmd: Command, remote = true): Command {
  cmd.addOption(new Option('--config <file>', 'configuration file').default(DEFAULT_CONFIG)).option('--json', 'print JSON');
  if (remote) cmd.option('--ca <file>', 'CA certificate to trust the server with (default: config ca_cert)').option('--server <url>', 'server URL (default: config server_url, else from listen)');
  return cmd;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`cannot use ${name} "${v}": expected a whole number`);
    return n;
  };
}

/** Commander's collector of a repeatable option. */
function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

/** --json-params: one JSON object. */
function jsonParams(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError(`cannot use --json-params "${text}": not JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('cannot use --json-params: expected a JSON object');
  return v as Record<string, unknown>;
}

interface SubmitOpts extends CommonOpts {
  param: Record<string, unknown>;
  jsonParams?: string;
  params?: string;
  label: string[];
  agent: string[];
  wait?: number;
  expires?: number;
}

/** Non-zero counts, e.g. "completed 3, queued 1". */
function countsText(c: Record<string, number>): string {
  return Object.entries(c).filter(([k, n]) => k !== 'total' && n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
}

function batchText(b: BatchView): string {
  const target = b.target.label ? `label ${Object.entries(b.target.label).map(([k, v]) => `${k}=${v}`).join(',')}` : `${b.target.agents?.length ?? 0} selected agent(s)`;
  const lines = [`batch ${t(b.id)}: ${t(b.module)} ${t(b.action)} for ${t(target)}, ${b.counts.total} host(s): ${t(countsText(b.counts))}`];
  const hosts = b.hosts ?? [];
  if (hosts.length > 0) {
    lines.push(table([
      ['AGENT', 'HOSTNAME', 'STATUS', 'JOB', 'ERROR'],
      ...hosts.map((h) => [h.agent_id, h.hostname ?? '-', h.job.status, h.job.id, String(h.job.result?.error ?? '')].map(t)),
    ]));
  }
  return lines.join('\n');
}

const batchDone = (b: BatchView): boolean => (b.hosts ?? []).every((h) => FINAL_JOB_STATUSES.has(h.job.status));

/** Polls a batch until every host's job finished or `seconds` passed. */
async function waitBatch(c: OperatorClient, id: string, seconds: number): Promise<BatchView> {
  const deadline = Date.now() + seconds * 1000;
  let b = await c.getBatch(id);
  while (!batchDone(b) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    b = await c.getBatch(id);
  }
  return b;
}

/** `jobs submit --label/--agent`: a batch; with --wait, exit 0 when every host completed, 1 when one did not, 2 when one is still open. */
async function submitBatch(c: OperatorClient, o: SubmitOpts, job: { module: string; action: string; params: Record<string, unknown> }): Promise<number> {
  let label: Record<string, string> | undefined;
  if (o.label.length > 0) {
    try {
      label = parseLabelWords(o.label).set;
    } catch (e) {
      throw new UsageError(`cannot use --label: ${(e as Error).message}`);
    }
  }
  const target = label ? { label } : { agents: o.agent };
  let b = await c.createBatch({ target, ...job, expires_in: o.expires });
  if (o.wait !== undefined && o.wait > 0) b = await waitBatch(c, b.id, o.wait);
  out(o, { batch: b }, () => batchText(b));
  if (o.wait === undefined) return 0;
  if (!batchDone(b)) {
    process.stderr.write(`Error: batch ${t(b.id)} still has unfinished jobs after ${o.wait} s\n`);
    return 2;
  }
  return b.counts.completed === b.counts.total ? 0 : 1;
}

function program(): Command {
  const p = new Command('tuxsec-server').description('TuxSec reference control server and operator commands').showHelpAfterError();

  common(p.command('serve').description('run the server'), false).action(async (o: CommonOpts) => {
    const cfg = loadConfig(o.config);
    // Loaded only here: an operator command must not pay for fastify, SQLite and pino.
    const { serve } = await import('./serve.ts');
    await serve(cfg);
  });

  const token = p.command('token').description('enrollment tokens');
  common(token.command('create').description('create an enrollment token'))
    .option('--uses <n>', 'how many registrations it allows', positiveInt('--uses'), 1)
    .option('--ttl <seconds>', 'seconds until it expires', positiveInt('--ttl'), 86400)
    .option('--label <key=value>', 'a label every agent enrolled with it gets; repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--name <name>', 'a name for the token (shown in lists; never the token)')
    .action((o: CommonOpts & { uses: number; ttl: number; label: string[]; name?: string }) =>
      withClient(o, async (c) => {
        const labels = labelWords(o.label).set;
        const tok = await c.createToken({ uses: o.uses, ttl: o.ttl, ...(o.label.length ? { labels } : {}), ...(o.name === undefined ? {} : { name: o.name }) });
        out(o, tok, () => `${t(tok.token)}\n(valid for ${tok.uses} registration${tok.uses === 1 ? '' : 's'} until ${t(tok.expires_at)})`);
      }),
    );

  common(token.command('list').description('list enrollment tokens (never their secret)')).action((o: CommonOpts) =>
    withClient(o, async (c) => {
      const list = await c.listTokens();
      out(o, { tokens: list }, () =>
        list.length === 0
          ? 'no tokens'
          : table([
              ['ID', 'NAME', 'USES LEFT', 'EXPIRES', 'LABELS'],
              ...list.map((k) => [
                k.id,
                k.name ?? '-',
                `${k.uses_left}/${k.uses}`,
                k.expired ? `${k.expires_at} (expired)` : k.expires_at,
                Object.entries(k.labels).map(([a, b]) => `${a}=${b}`).join(',') || '-',
              ].map(t)),
            ]),
      );
    }),
  );
  common(token.command('revoke <id>').description('revoke an enrollment token (agents it enrolled stay)')).action((id: string, o: CommonOpts) =>
    withClient(o, async (c) => {
      await c.revokeToken(id);
      out(o, { id, revoked: true }, () => `token ${t(id)} revoked`);
    }),
  );

  const agents = p.command('agents').description('enrolled agents');
  common(agents.command('list').description('list agents'))
    .option('--search <text>', 'only agents whose hostname, id or address contains this')
    .option('--label <key=value>', 'only agents with this label; repeatable', collect, [])
    .option('--state <state>', 'only agents in this state: online, stale, offline, pending or rejected')
    .option('--mode <mode>', 'only agents of this mode: pull, push or ssh')
    .option('--os <text>', 'only agents whose OS information contains this')
    .action((o: CommonOpts & { search?: string; label: string[]; state?: string; mode?: string; os?: string }) =>
      withClient(o, async (c) => {
        const list = await c.listAgents({ q: o.search, label: o.label.length ? o.label : undefined, state: o.state, mode: o.mode, os: o.os });
        out(o, { agents: list }, () => agentsText(list));
      }),
    );
  modeOptions(common(agents.command('add <name>').description('add an agent the server delivers to (push or ssh mode)')))
    .requiredOption('--mode <mode>', 'push or ssh')
    .action((name: string, o: CommonOpts & ModeOpts & { mode: string }) =>
      withClient(o, async (c) => {
        const r = await c.addAgent({ name, ...modeInput(o.mode, o) });
        out(o, r, () => keyedAgentText(r.agent, r.api_key));
      }),
    );
  modeOptions(common(agents.command('set-mode <id> <mode>').description('change how an agent gets its jobs: pull, push or ssh')))
    .action((id: string, mode: string, o: CommonOpts & ModeOpts) =>
      withClient(o, async (c) => {
        const r = await c.setAgentMode(id, modeInput(mode, o));
        out(o, r, () => keyedAgentText(r.agent, r.api_key));
      }),
    );
  common(agents.command('get <id>').description('show an agent'))
    .option('--health', 'also ask a push-mode agent for its /health')
    .action((id: string, o: CommonOpts & { health?: boolean }) =>
      withClient(o, async (c) => {
        const a = (await c.listAgents({ q: id })).find((x) => x.id === id);
        if (!a) throw new OperatorError(`cannot find agent "${id}"`, 404, 'not-found');
        const health = o.health ? await c.agentHealth(id) : undefined;
        out(o, { agent: a, ...(health === undefined ? {} : { health }) }, () => {
          const lines = [
            `agent ${t(a.id)} (${t(a.hostname)}): ${t(a.status)}, ${endpointText(a)}`,
            `  version ${t(a.version ?? '-')}, last seen ${t(a.last_seen ?? '-')}, modules ${t(a.modules.join(', ') || '-')}`,
          ];
          if (health !== undefined) lines.push(`  health: ${t(health.status)}, rootd connected ${t(health.rootd_connected)}, version ${t(health.version)}, modules ${t((health.modules as string[]).join(', '))}`);
          return lines.join('\n');
        });
      }),
    );
  common(agents.command('label <id> <labels...>').description('set labels of an agent: KEY=VALUE sets, KEY- removes'))
    .action((id: string, words: string[], o: CommonOpts) =>
      withClient(o, async (c) => {
        const { set, remove } = labelWords(words, true);
        const a = await c.labelAgent(id, { set, remove });
        out(o, { agent: a }, () => `agent ${t(a.id)} (${t(a.hostname)}): ${t(labelsText(a.labels)) || 'no labels'}`);
      }),
    );
  for (const verb of ['approve', 'reject'] as const) {
    common(agents.command(`${verb} <id>`).description(`${verb} a pending agent`)).action((id: string, o: CommonOpts) =>
      withClient(o, async (c) => {
        const a = await c.setAgentStatus(id, verb);
        out(o, { agent: a }, () => `agent ${t(a.id)} (${t(a.hostname)}): ${t(a.status)}`);
      }),
    );
  }

  const jobs = p.command('jobs').description('jobs for agents');
  common(jobs.command('submit <words...>').usage('[options] AGENT MODULE ACTION | --label KEY=VALUE... | --agent ID... MODULE ACTION'))
    .description('queue a job for an agent, or a batch: one job per host with --label (hosts with every label) or --agent (repeated)')
    .option('--param <key=value>', 'a parameter (value tried as JSON first); repeatable', (v: string, acc: Record<string, unknown>) => parseParam(v, acc), {})
    .option('--json-params <json>', 'parameters as one JSON object (--param entries override)')
    .option('--params <json>', 'the same as --json-params')
    .option('--label <key=value>', 'a batch for the approved hosts with this label; repeatable (every label must match)', collect, [])
    .option('--agent <id>', 'a batch for these hosts; repeatable', collect, [])
    .option('--wait <seconds>', 'wait until the job (every job of a batch) finishes, at most this long', positiveInt('--wait'))
    .option('--expires <seconds>', 'seconds the job waits for its agent (default: config job_default_ttl)', positiveInt('--expires'))
    .action((words: string[], o: SubmitOpts) =>
      withClient(o, async (c) => {
        const batch = o.label.length > 0 || o.agent.length > 0;
        if (o.label.length > 0 && o.agent.length > 0) throw new UsageError('cannot submit job: give --label or --agent, not both');
        if (words.length !== (batch ? 2 : 3)) {
          throw new UsageError(batch ? 'cannot submit batch: expected MODULE ACTION after --label/--agent' : 'cannot submit job: expected AGENT MODULE ACTION (or --label KEY=VALUE MODULE ACTION)');
        }
        const [module, action] = batch ? (words as [string, string]) : [words[1]!, words[2]!];
        const re = new RegExp(NAME_PATTERN);
        if (!re.test(module)) throw new UsageError(`cannot submit job: invalid module name "${module}"`);
        if (!re.test(action)) throw new UsageError(`cannot submit job: invalid action name "${action}"`);
        const params = { ...jsonParams(o.jsonParams ?? o.params), ...o.param };
        if (batch) return submitBatch(c, o, { module, action, params });
        let job = await c.submitJob({ agent_id: words[0]!, module, action, params, expires_in: o.expires });
        if (o.wait !== undefined && o.wait > 0) job = await c.waitJob(job.id, o.wait);
        out(o, { job }, () => jobText(job));
        if (o.wait === undefined) return 0;
        if (!FINAL_JOB_STATUSES.has(job.status)) {
          process.stderr.write(`Error: job ${t(job.id)} still ${t(job.status)} after ${o.wait} s\n`);
          return 2;
        }
        return job.status === 'completed' ? 0 : 1;
      }),
    );
  const batch = jobs.command('batch').description('batches: one job per host');
  common(batch.command('get <id>').description('show a batch: each host\'s latest job and the counts'))
    .option('--wait <seconds>', 'wait until every job finishes, at most this long', positiveInt('--wait'))
    .action((id: string, o: CommonOpts & { wait?: number }) =>
      withClient(o, async (c) => {
        const b = o.wait ? await waitBatch(c, id, o.wait) : await c.getBatch(id);
        out(o, { batch: b }, () => batchText(b));
      }),
    );
  common(batch.command('list').description('list batches, newest first'))
    .option('--limit <n>', 'at most this many (default 20)', positiveInt('--limit'))
    .action((o: CommonOpts & { limit?: number }) =>
      withClient(o, async (c) => {
        const list = await c.listBatches({ limit: o.limit });
        out(o, { batches: list }, () =>
          list.length === 0
            ? 'no batches'
            : table([
                ['ID', 'CREATED', 'BY', 'MODULE', 'ACTION', 'HOSTS', 'COUNTS'],
                ...list.map((b) => [b.id, b.created_at, b.created_by, b.module, b.action, String(b.counts.total), countsText(b.counts)].map(t)),
              ]),
        );
      }),
    );
  common(batch.command('retry <id>').description('queue the job again on the hosts whose latest job failed, expired, was interrupted or cancelled, or got no result'))
    .action((id: string, o: CommonOpts) =>
      withClient(o, async (c) => {
        const r = await c.retryBatch(id);
        out(o, r, () => `${r.retried.length} host(s) queued again\n${batchText(r.batch)}`);
      }),
    );
  common(batch.command('cancel <id>').description('cancel a batch: queued jobs at once, running ones through their agents'))
    .action((id: string, o: CommonOpts) =>
      withClient(o, async (c) => {
        const r = await c.cancelBatch(id);
        out(o, r, () => `${r.cancelled.length} job(s) cancelled, ${r.cancel_requested.length} asked to cancel\n${batchText(r.batch)}`);
      }),
    );
  common(jobs.command('get <id>').description('show a job and its result'))
    .option('--wait <seconds>', 'wait until the job finishes, at most this long', positiveInt('--wait'))
    .action((id: string, o: CommonOpts & { wait?: number }) =>
      withClient(o, async (c) => {
        const job = o.wait ? await c.waitJob(id, o.wait) : await c.getJob(id);
        out(o, { job }, () => jobText(job));
      }),
    );
  common(jobs.command('cancel <id>').description('cancel a job: a queued one at once, a running one through its agent'))
    .action((id: string, o: CommonOpts) =>
      withClient(o, async (c) => {
        const job = await c.cancelJob(id);
        out(o, { job }, () => jobText(job));
      }),
    );
  common(jobs.command('list').description('list jobs, newest first'))
    .option('--agent <id>', 'only this agent')
    .option('--status <status>', 'only this status (queued, sent, running, completed, failed, interrupted, expired, cancelled, delivered-without-result)')
    .option('--limit <n>', 'at most this many (default 100)', positiveInt('--limit'))
    .action((o: CommonOpts & { agent?: string; status?: string; limit?: number }) =>
      withClient(o, async (c) => {
        const list = await c.listJobs({ agent_id: o.agent, status: o.status, limit: o.limit });
        out(o, { jobs: list }, () =>
          list.length === 0
            ? 'no jobs'
            : table([
                ['ID', 'AGENT', 'MODULE', 'ACTION', 'STATUS', 'CREATED', 'FINISHED'],
                ...list.map((j) => [j.id, j.agent_id, j.module, j.action, j.status, j.created_at, j.finished_at ?? '-'].map(t)),
              ]),
        );
      }),
    );
  const user = p.command('user').description('operators of the API and the console (docs/operators.md)');
  common(user.command('add <name>').description('add a user; the password is read from stdin or generated and printed once'))
    .requiredOption('--role <role>', 'admin, operator or viewer')
    .option('--label <key=value>', 'operator only: limit it to agents with this label; repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--password-stdin', 'read the password from stdin (one line)')
    .action((name: string, o: CommonOpts & { role: string; label: string[]; passwordStdin?: boolean }) =>
      withClient(o, async (c) => {
        if (!['admin', 'operator', 'viewer'].includes(o.role)) throw new UsageError(`cannot use --role "${o.role}": expected admin, operator or viewer`);
        let labels: Record<string, string>;
        try {
          labels = parseLabelWords(o.label).set;
        } catch (e) {
          throw new UsageError(`cannot use --label: ${(e as Error).message}`);
        }
        const password = o.passwordStdin ? await readPasswordStdin() : undefined;
        const selector = Object.keys(labels).length > 0 ? labels : undefined;
        const r = await c.addUser({ name, role: o.role, selector, password });
        out(o, r, () => [`user ${t(r.user.name)} added: ${t(r.user.role)}${selectorText(r.user.selector)}`, ...(r.password === undefined ? [] : ['password, shown only now:', t(r.password)])].join('\n'));
      }),
    );
  common(user.command('list').description('list users')).action((o: CommonOpts) =>
    withClient(o, async (c) => {
      const list = await c.listUsers();
      out(o, { users: list }, () =>
        list.length === 0
          ? 'no users'
          : table([['NAME', 'ROLE', 'SELECTOR', 'SESSIONS', 'CREATED'], ...list.map((u) => [u.name, u.role, selectorText(u.selector).replace(/^, limited to /, '') || '-', String(u.sessions), u.created_at].map(t))]),
      );
    }),
  );
  common(user.command('remove <name>').description('remove a user and end its sessions')).action((name: string, o: CommonOpts) =>
    withClient(o, async (c) => {
      await c.removeUser(name);
      out(o, { removed: name }, () => `user ${t(name)} removed`);
    }),
  );
  common(user.command('passwd <name>').description('set a user\'s password (read from stdin or generated and printed once); ends its sessions'))
    .option('--password-stdin', 'read the password from stdin (one line)')
    .action((name: string, o: CommonOpts & { passwordStdin?: boolean }) =>
      withClient(o, async (c) => {
        const password = o.passwordStdin ? await readPasswordStdin() : undefined;
        const r = await c.setUserPassword(name, password);
        out(o, r, () => [`password of user ${t(r.user.name)} set; its sessions ended`, ...(r.password === undefined ? [] : ['password, shown only now:', t(r.password)])].join('\n'));
      }),
    );
  common(user.command('revoke <name>').description('end every session of a user')).action((name: string, o: CommonOpts) =>
    withClient(o, async (c) => {
      const ended = await c.revokeUser(name);
      out(o, { ended }, () => `${ended} session${ended === 1 ? '' : 's'} of user ${t(name)} ended`);
    }),
  );

  common(p.command('audit').description('the audit log: every change made through the operator API'))
    .option('--format <format>', 'csv or jsonl (raw export); default a table (or JSON with --json)')
    .option('--since <when>', 'from this time: ISO 8601, or an age like 30m, 24h, 7d')
    .option('--until <when>', 'before this time: ISO 8601, or an age')
    .option('--actor <name>', 'only this user (admin-token for the token)')
    .option('--action <action>', 'only this action')
    .option('--agent <id>', 'only entries touching this agent')
    .option('--limit <n>', 'the newest N entries (default 1000, at most 10000)', positiveInt('--limit'))
    .action((o: CommonOpts & { format?: string; since?: string; until?: string; actor?: string; action?: string; agent?: string; limit?: number }) =>
      withClient(o, async (c) => {
        if (o.format !== undefined && o.format !== 'csv' && o.format !== 'jsonl') throw new UsageError(`cannot use --format "${o.format}": expected csv or jsonl`);
        const filter = { actor: o.actor, action: o.action, agent: o.agent, since: when(o.since, '--since'), until: when(o.until, '--until'), limit: o.limit };
        if (o.format !== undefined) {
          // Raw export for files and other tools: written as the server made it.
          process.stdout.write(await c.audit({ ...filter, format: o.format }));
          return;
        }
        const { entries } = JSON.parse(await c.audit(filter)) as { entries: Array<{ at: string; actor: string; action: string; agents: string[]; params: unknown; result: string }> };
        out(o, { entries }, () =>
          entries.length === 0
            ? 'no audit entries'
            : table([['AT', 'ACTOR', 'ACTION', 'AGENTS', 'RESULT', 'PARAMS'], ...entries.map((e) => [e.at, e.actor, e.action, e.agents.join(' ') || '-', e.result, JSON.stringify(e.params)].map(t))]),
        );
      }),
    );

  templateCommands<CommonOpts>(p, { common, withClient, out, t, table, labelWords, positiveInt, usage: (m) => new UsageError(m), waitBatch });
  return p;
}

function selectorText(sel: Record<string, string> | null): string {
  return sel === null ? '' : `, limited to ${Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',')}`;
}

/** --since/--until: an ISO date as is, an age (30m, 24h, 7d) as the time that long ago. */
function when(v: string | undefined, opt: string): string | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,6})([smhd])$/.exec(v);
  if (m) return new Date(Date.now() - Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'] * 1000).toISOString();
  if (/^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(Date.parse(v))) return v;
  throw new UsageError(`cannot use ${opt} "${v}": expected an ISO 8601 date or an age like 30m, 24h, 7d`);
}

/** One password line from stdin (the trailing newline removed), refused when longer than the server takes. */
async function readPasswordStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > PASSWORD_MAX + 2) throw new UsageError(`cannot read password from stdin: longer than ${PASSWORD_MAX} characters`);
    chunks.push(c);
  }
  const pw = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (pw.length === 0) throw new UsageError('cannot read password from stdin: it is empty');
  return pw;
}

async function main(): Promise<void> {
  try {
    await program().parseAsync(process.argv);
  } catch (e) {
    const msg = e instanceof ConfigError || e instanceof UsageError || e instanceof OperatorError ? e.message : `${(e as Error).message}`;
    process.stderr.write(`Error: ${terminalSafe(msg)}\n`);
    process.exit(1);
  }
}

await main();
