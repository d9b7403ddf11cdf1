/**
 * agent.yaml: the seed's keys plus rootd_socket, state_dir, outbox bounds and a job policy.
 * Validated at start; every message names the offending key. The api_key comes from, in order: a
 * systemd credential ($CREDENTIALS_DIRECTORY/api_key), TUXSEC_API_KEY, the file named by
 * api_key_file (where "tuxsec-agent register" puts it), and last agent.yaml's own api_key (the
 * seed's place, which the socket group can read: setup-system.sh moves it out on upgrade).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ConfigError, badKey, parseConfigYaml, readConfigText, validateConfig as validateAgainst } from '../common/config-file.ts';
import { LogLevel } from '../common/log-level.ts';

export const DEFAULT_CONFIG_PATH = '/etc/tuxsec/agent.yaml';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()], { default: null });
const PathStr = Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', description: 'an absolute path' });
/** `module/action`, `module/*` or `*`. */
const PolicyRule = Type.String({ pattern: '^(\\*|[A-Za-z0-9_.-]{1,64}/(\\*|[A-Za-z0-9_.-]{1,64}))$' });

export const AgentConfigSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('pull'), Type.Literal('push'), Type.Literal('ssh')], { default: 'pull' }),
    server_url: Nullable(Type.String({ pattern: '^https://[^\\s]+$', maxLength: 2048 })),
    agent_id: Nullable(Type.String({ minLength: 1, maxLength: 200 })),
    api_key: Nullable(Type.String({ minLength: 1, maxLength: 1024 })),
    api_key_file: Nullable(PathStr),
    poll_interval: Type.Integer({ minimum: 1, maximum: 86400, default: 30 }),
    /** Seconds between progress reports of a running job that changed; unchanged ones every 3 times this. */
    progress_interval: Type.Integer({ minimum: 1, maximum: 3600, default: 5 }),
    listen_host: Type.String({ minLength: 1, maxLength: 255, default: '0.0.0.0' }),
    listen_port: Type.Integer({ minimum: 1, maximum: 65535, default: 8443 }),
    ssl_cert: Nullable(PathStr),
    ssl_key: Nullable(PathStr),
    ca_cert: Nullable(PathStr),
    log_level: LogLevel('INFO'),
    log_file: Nullable(PathStr),
    rootd_socket: Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', description: 'an absolute path', default: '/var/run/tuxsec/rootd.sock' }),
    state_dir: Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', description: 'an absolute path', default: '/var/lib/tuxsec' }),
    outbox_max_entries: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000 }),
    outbox_max_bytes: Type.Integer({ minimum: 65536, maximum: 1024 * 1024 * 1024, default: 16 * 1024 * 1024 }),
    policy: Type.Object(
      {
        allow: Type.Optional(Type.Array(PolicyRule, { maxItems: 1000 })),
        deny: Type.Optional(Type.Array(PolicyRule, { maxItems: 1000 })),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type AgentConfig = Static<typeof AgentConfigSchema>;

/**
 * Validates a parsed YAML value and fills defaults. `source` names the file in messages.
 * The api_key's value never appears in a message.
 */
export function validateConfig(raw: unknown, source: string): AgentConfig {
  const cfg = validateAgainst(AgentConfigSchema, raw, source, { secrets: ['api_key'] });
  if ((cfg.ssl_cert === null) !== (cfg.ssl_key === null)) {
    const missing = cfg.ssl_cert === null ? 'ssl_cert' : 'ssl_key';
    throw badKey(source, missing, null, 'is required when the other of ssl_cert/ssl_key is set');
  }
  return cfg;
}

export const DEFAULTS: AgentConfig = validateConfig({}, '(defaults)');

/** Parses agent.yaml's text (register and migrate-secrets keep the text to update it). */
export function parseConfigText(text: string, source: string): AgentConfig {
  return validateConfig(parseConfigYaml(text, source), source);
}

export interface SecretSources {
  env?: NodeJS.ProcessEnv;
  readFile?: (p: string) => string;
}

/** The user the agent runs as (tuxsec-agent.service: User=tuxsec); it alone reads the secrets. */
export const AGENT_USER = 'tuxsec';

const MAX_SECRET_BYTES = 4096;

/** Checks a token or key: 1..1024 characters, no white space; `what` names its source. */
export function checkSecretValue(value: string, what: string): string {
  const v = value.trim();
  if (v.length === 0 || v.length > 1024 || /\s/.test(v)) {
    throw new ConfigError(`cannot use ${what}: the value must be 1..1024 characters without spaces`);
  }
  return v;
}

function modeText(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

function fixHint(file: string): string {
  return `run "tuxsec-agent migrate-secrets" or "chown ${AGENT_USER}:${AGENT_USER} ${file} && chmod 0600 ${file}" as root`;
}

/**
 * Reads the api_key from api_key_file. Null when the file does not exist; refused when it is not
 * a regular file or when group or others could read it (the group is the socket group).
 */
export function readApiKeyFile(file: string): string | null {
  const shown = JSON.stringify(file);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return null;
    throw new ConfigError(`cannot read api_key_file ${shown}: ${err.code === 'ELOOP' ? 'it is a symbolic link' : (err.code ?? err.message)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ConfigError(`cannot read api_key_file ${shown}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new ConfigError(`cannot read api_key_file ${shown}: mode ${modeText(st.mode)} lets group or others read the api_key; ${fixHint(file)}`);
    }
    const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_SECRET_BYTES) throw new ConfigError(`cannot read api_key_file ${shown}: larger than ${MAX_SECRET_BYTES} bytes`);
    return checkSecretValue(buf.subarray(0, n).toString('utf8'), `api_key_file ${shown}`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Refuses a private key file (ssl_key) that group or others can read: the group being the socket
 * group, every CLI user could present the agent's certificate.
 */
export function assertPrivateFile(file: string, key: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`cannot read ${key} ${JSON.stringify(file)}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(`cannot use ${key} ${JSON.stringify(file)}: mode ${modeText(st.mode)} lets group or others read the private key; ${fixHint(file)}`);
  }
}

/**
 * Applies the api_key's other sources: a systemd credential file first, then TUXSEC_API_KEY,
 * then api_key_file, then the config file's value.
 */
export function applySecretSources(cfg: AgentConfig, src: SecretSources = {}): AgentConfig {
  const env = src.env ?? process.env;
  const read = src.readFile ?? ((p: string) => fs.readFileSync(p, 'utf8'));
  const dir = env.CREDENTIALS_DIRECTORY;
  if (dir) {
    const p = path.join(dir, 'api_key');
    let text: string | null = null;
    try {
      text = read(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ConfigError(`cannot read api_key credential ${p}: ${(e as Error).message}`);
      }
    }
    if (text !== null) return { ...cfg, api_key: checkSecretValue(text, `api_key credential ${p}`) };
  }
  const fromEnv = env.TUXSEC_API_KEY;
  if (fromEnv !== undefined && fromEnv !== '') return { ...cfg, api_key: checkSecretValue(fromEnv, 'TUXSEC_API_KEY') };
  if (cfg.api_key_file !== null) {
    const key = readApiKeyFile(cfg.api_key_file);
    if (key !== null) return { ...cfg, api_key: key };
  }
  return cfg;
}

function exists(file: string): boolean {
  try {
    fs.statSync(file);
    return true;
  } catch (e) {
    // Only "not there" counts as absent: a file we may not read is an error later, not ignored.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** What a mode leaves of a config, and the one warning naming what it ignores (null: none). */
export interface ModeSettings {
  cfg: AgentConfig;
  warning: string | null;
}

/**
 * Drops the settings of a mode not in use. In pull mode listen_host and listen_port are push
 * mode's (the Python agent's HTTPS listener), never read. ssl_cert and ssl_key are pull mode's
 * client certificate when their files are there; a Python-era agent.yaml names push mode's
 * certificate, which a pull-mode host does not have: when neither file is there they are push
 * mode's too. `setKeys` are the keys the file sets (defaults are not worth a warning).
 */
export function settingsForMode(cfg: AgentConfig, setKeys: readonly string[]): ModeSettings {
  if (cfg.mode !== 'pull') return { cfg, warning: null };
  const ignored: string[] = ['listen_host', 'listen_port'].filter((k) => setKeys.includes(k));
  let out = cfg;
  let certNote = '';
  if (cfg.ssl_cert !== null && cfg.ssl_key !== null && !exists(cfg.ssl_cert) && !exists(cfg.ssl_key)) {
    ignored.push('ssl_cert', 'ssl_key');
    out = { ...cfg, ssl_cert: null, ssl_key: null };
    certNote = `; ssl_cert and ssl_key would be pull mode's client certificate, but ${JSON.stringify(cfg.ssl_cert)} and ${JSON.stringify(cfg.ssl_key)} are not there`;
  }
  if (ignored.length === 0) return { cfg, warning: null };
  return { cfg: out, warning: `ignoring ${ignored.join(', ')}: settings of push mode, which pull mode does not use${certNote}` };
}

/**
 * A ca_cert that is set must be there: the agent never falls back to the system's CAs on its own,
 * as that would trust any public CA where the operator meant one private CA.
 */
export function assertCaCert(cfg: AgentConfig, file: string): void {
  if (cfg.ca_cert === null) return;
  const shownPath = JSON.stringify(cfg.ca_cert);
  let st: fs.Stats;
  try {
    st = fs.statSync(cfg.ca_cert);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') throw new ConfigError(`cannot read ca_cert ${shownPath}: ${err.code ?? err.message}`);
    throw new ConfigError(
      cfg.mode === 'push'
        ? `cannot read ca_cert ${shownPath}: no such file; put there the CA certificate that signed the server's client certificates, or set "ca_cert: null" in ${file} to ask for none`
        : `cannot read ca_cert ${shownPath}: no such file; put there the CA certificate that signed the server's certificate, or set "ca_cert: null" in ${file} to trust the system's CAs`,
    );
  }
  if (!st.isFile()) throw new ConfigError(`cannot read ca_cert ${shownPath}: not a regular file`);
}

export interface LoadOptions {
  /** The command-line --mode, over the file's. */
  mode?: string;
  /** Told the one warning about settings of a mode not in use. */
  warn?: (message: string) => void;
}

/** Push mode's X-API-Key is what a network client must guess: 32 characters of `openssl rand -hex 32` or similar. */
export const MIN_PUSH_KEY_CHARS = 32;

/** Refuses, in push mode, an api_key short enough to guess (the message never shows the key). */
export function assertPushKey(cfg: AgentConfig): void {
  if (cfg.mode !== 'push' || cfg.api_key === null || cfg.api_key.length >= MIN_PUSH_KEY_CHARS) return;
  throw new ConfigError(
    `cannot use key "api_key" in push mode: it is shorter than ${MIN_PUSH_KEY_CHARS} characters, which a client on the network could guess; make one with "openssl rand -hex 32" and give the same to the server`,
  );
}

/**
 * Loads agent.yaml for running: validated, settings of other modes dropped (one warning), the
 * ca_cert checked, the api_key taken from its sources (in push mode at least MIN_PUSH_KEY_CHARS long).
 */
export function loadConfig(file: string, opts: LoadOptions = {}, src: SecretSources = {}): AgentConfig {
  let raw = parseConfigYaml(readConfigText(file)!, file);
  const isMap = typeof raw === 'object' && raw !== null && !Array.isArray(raw);
  if (opts.mode !== undefined && isMap) raw = { ...(raw as object), mode: opts.mode };
  const { cfg, warning } = settingsForMode(validateConfig(raw, file), isMap ? Object.keys(raw as object) : []);
  if (warning !== null) opts.warn?.(warning);
  assertCaCert(cfg, file);
  const out = applySecretSources(cfg, src);
  assertPushKey(out);
  return out;
}
