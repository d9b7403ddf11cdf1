/**
 * `tuxsec-agent register`: enrolls with the server (run by root), writes the api_key into the
 * credentials file only the agent's user can read (secrets.ts), and agent_id, server_url and
 * api_key_file into agent.yaml atomically, keeping its comments, other keys, owner and mode less
 * any world access (0640 root:tuxsec for a new file). agent.yaml keeps `api_key: null`: the
 * socket group can read it. `migrate-secrets` does the same move for an older install's key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../common/config-file.ts';
import { assertCaCert, DEFAULT_CONFIG_PATH, parseConfigText, settingsForMode, validateConfig, type AgentConfig } from './config.ts';
import { writeFileAtomic } from '../os/durable-files.ts';
import { HttpClient, replyBody } from './http.ts';
import { PULL_PATH, registerReplySchema, type RegisterReply, type RegisterRequest } from '../protocol/jobs.ts';
import { apiKeyFileHolds, defaultApiKeyFile, storeApiKey, tightenPrivateFile, updateConfigText } from './secrets.ts';

export interface RegisterOptions {
  configFile: string;
  server: string;
  token?: string;
  version: string;
  /** Modules rootd offers, when it could be asked. */
  modules?: string[];
  /** Injected for tests; defaults to an HttpClient built from the config's TLS settings. */
  http?: Pick<HttpClient, 'post'>;
}

export interface RegisterResult {
  status: 'registered' | 'pending-approval';
  agent_id?: string;
  message: string;
}

/** Best effort: the first non-internal IPv4 address, else loopback. */
function primaryAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export function machineId(): string | undefined {
  for (const p of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = fs.readFileSync(p, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch {
      // next candidate
    }
  }
  return undefined;
}

function groupId(name: string): number | undefined {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    // no /etc/group: keep root's group
  }
  return undefined;
}

/**
 * Writes `text` over `file` atomically (temp in the same directory, fsync, rename, directory
 * fsync) with the original's owner and mode less its "other" bits; a new file gets 0640 root:tuxsec.
 * With `seedOwner` (setup), the file gets the seed's 0640 root:tuxsec whatever it had.
 */
export function writeConfigAtomic(file: string, text: string, opts: { seedOwner?: boolean } = {}): void {
  let mode = 0o640;
  let uid = 0;
  let gid = groupId('tuxsec') ?? 0;
  try {
    const st = fs.statSync(file);
    if (!opts.seedOwner) {
      // The file is about to hold the api_key: keep owner and group bits, never "other" ones.
      mode = st.mode & 0o7770;
      uid = st.uid;
      gid = st.gid;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  }
  // chown needs root; an unprivileged caller can only keep its own ids.
  const canChown = process.getuid?.() === 0;
  try {
    writeFileAtomic(file, text, canChown ? { mode, uid, gid } : { mode });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      throw new ConfigError(`cannot write config ${file}: permission denied (run "tuxsec-agent register" as root)`);
    }
    throw e;
  }
}

export async function register(opts: RegisterOptions): Promise<RegisterResult> {
  let text: string;
  let cfg: AgentConfig;
  if (fs.existsSync(opts.configFile)) {
    text = fs.readFileSync(opts.configFile, 'utf8');
    cfg = parseConfigText(text, opts.configFile);
  } else {
    text = '# tuxsec-agent configuration (written by "tuxsec-agent register")\nmode: pull\n';
    cfg = validateConfig({}, opts.configFile);
  }
  const server = opts.server.replace(/\/+$/, '');
  if (!/^https:\/\/[^\s]+$/.test(server)) throw new ConfigError(`cannot register with ${JSON.stringify(opts.server)}: the server URL must start with https://`);
  let http = opts.http;
  if (!http) {
    // Registering is pull mode's first step: its certificates, not a Python-era push mode's.
    const tls = settingsForMode({ ...cfg, mode: 'pull' }, []).cfg;
    assertCaCert(tls, opts.configFile);
    http = new HttpClient({ serverUrl: server, caCert: tls.ca_cert, sslCert: tls.ssl_cert, sslKey: tls.ssl_key });
  }
  const body: RegisterRequest = {
    hostname: os.hostname(),
    ip_address: primaryAddress(),
    os_info: { system: os.type(), release: os.release(), version: os.version(), machine: os.machine() },
    version: opts.version,
  };
  const mid = machineId();
  if (mid) body.machine_id = mid;
  if (opts.modules) body.modules = opts.modules;
  if (opts.token !== undefined) body.enrollment_token = opts.token;
  let res;
  try {
    res = await http.post(PULL_PATH.register, body, { timeoutMs: 30_000 });
  } finally {
    if (!opts.http) await (http as HttpClient).close();
  }
  const b: RegisterReply = replyBody(res, registerReplySchema(res.body), PULL_PATH.register);
  // 202 pending-approval still carries credentials: stored as for a 200; check-ins answer 403
  // pending-approval until an operator approves.
  const { agent_id: agentId, api_key: apiKey } = b;
  const keyFile = cfg.api_key_file ?? defaultApiKeyFile(opts.configFile);
  const updated = updateConfigText(text, { server_url: server, agent_id: agentId, api_key: null, api_key_file: keyFile });
  // Never write a config the agent would then refuse.
  parseConfigText(updated, opts.configFile);
  // The key first: a config naming a key file that is not there yet would read as unregistered.
  await storeApiKey(keyFile, apiKey);
  writeConfigAtomic(opts.configFile, updated);
  if (!b.success) {
    const why = b.error.slice(0, 300);
    return {
      status: 'pending-approval',
      agent_id: agentId,
      message: `registered as agent ${agentId}, pending an operator's approval (${why}); wrote ${opts.configFile} and ${keyFile}`,
    };
  }
  return { status: 'registered', agent_id: agentId, message: `registered as agent ${agentId}; wrote ${opts.configFile} and ${keyFile}` };
}

/** What migrate-secrets did (one line each) and what the operator must still do. */
export interface MigrateResult {
  done: string[];
  warnings: string[];
}

/**
 * The steps that replace an agent's api_key: enrolling again gives a new agent id and key, and
 * rejecting the old id makes the server refuse the old key. The protocol has no key rotation.
 */
function rotateKeyHelp(cfg: Pick<AgentConfig, 'server_url' | 'agent_id'>, configFile: string): string {
  const server = cfg.server_url ?? 'https://SERVER';
  const config = path.resolve(configFile) === DEFAULT_CONFIG_PATH ? '' : ` --config ${configFile}`;
  return (
    `replace it: on the server run "tuxsec-server token create", then here ` +
    `"sudo tuxsec-agent register --server ${server} --token-file FILE${config}" and ` +
    `"sudo systemctl restart tuxsec-agent", then on the server "tuxsec-server agents approve NEW_ID" ` +
    `(the id register prints) and "tuxsec-server agents reject ${cfg.agent_id ?? 'OLD_ID'}", ` +
    `which makes the server refuse the old key`
  );
}

/**
 * Moves the secrets of an older install out of the socket group's reach (run as root by
 * setup-system.sh on every install and upgrade; idempotent): an api_key in agent.yaml goes to
 * the credentials file and agent.yaml is rewritten atomically with `api_key: null`, comments
 * kept; an ssl_key group or others could read is given to the agent's user, 0600. Returns what
 * it did, one line each, and warnings: a key the socket group could read must be replaced, as
 * moving it does not take back a copy someone made.
 */
export async function migrateSecrets(configFile: string): Promise<MigrateResult> {
  const done: string[] = [];
  const warnings: string[] = [];
  if (!fs.existsSync(configFile)) return { done, warnings };
  const text = fs.readFileSync(configFile, 'utf8');
  const mode = fs.statSync(configFile).mode;
  const cfg = parseConfigText(text, configFile);
  if (cfg.api_key !== null) {
    const file = cfg.api_key_file ?? defaultApiKeyFile(configFile);
    const updated = updateConfigText(text, { api_key: null, api_key_file: file });
    parseConfigText(updated, configFile);
    // A key file the config names wins over agent.yaml at start, so it holds the key in use (or
    // the same one, after a crash between the two writes below): never overwritten with
    // agent.yaml's. The default path the config does not name was never read by the agent, and
    // the tuxsec user owns its directory: what is there counts only if it is agent.yaml's key in a
    // file as register writes it; anything else is replaced (by rename, so never through a link).
    if (cfg.api_key_file !== null && fs.existsSync(file)) {
      writeConfigAtomic(configFile, updated);
      done.push(`removed the api_key from ${configFile} (the agent uses the one in ${file})`);
    } else if (cfg.api_key_file === null && (await apiKeyFileHolds(file, cfg.api_key))) {
      writeConfigAtomic(configFile, updated);
      done.push(`removed the api_key from ${configFile} (${file} already holds it)`);
    } else {
      const replaced = present(file);
      await storeApiKey(file, cfg.api_key);
      writeConfigAtomic(configFile, updated);
      done.push(`moved the api_key from ${configFile} to ${file}${replaced ? ' (replacing what was there, which the agent never used)' : ''}`);
    }
    if ((mode & 0o044) !== 0) {
      const who = mode & 0o004 ? 'every user' : 'its group (the socket group: every CLI user)';
      warnings.push(`the api_key was in ${configFile}, which ${who} could read, and moving it does not take back a copy: ${rotateKeyHelp(cfg, configFile)}`);
    }
  }
  if (cfg.ssl_key !== null) {
    const r = await tightenPrivateFile(cfg.ssl_key);
    if (r.changed) done.push(`made ssl_key ${cfg.ssl_key} readable by the agent's user only (0600)`);
    if (r.refused) warnings.push(r.refused);
  }
  return { done, warnings };
}

/** Whether anything (a dangling link too) has that name. */
function present(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}
