/**
 * `tuxsec-agent setup`: the seed's configuration wizard (run as root). On a terminal it asks for
 * what the flags do not give (the current agent.yaml's values offered as defaults); otherwise every
 * answer is a flag and a missing one is an error naming it. Each answer is checked on the spot
 * against the loader's own schema and, for a certificate or key, with tuxsec-cli doctor's checks;
 * the whole result is checked again before anything is written, so a refused setup writes nothing.
 *
 * What it writes: agent.yaml with the seed's 0640 root:tuxsec, updated in place when it exists (its
 * comments and the keys setup does not ask about are kept, as register does); push mode's api_key
 * in the credentials file only the agent's user reads (secrets.ts); SSH mode's files through
 * ssh-setup. The enrollment token is used once to register and never written anywhere.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Writable } from 'node:stream';
import { ConfigError, readConfigText, shown, validateConfig as validateAgainst } from '../common/config-file.ts';
import { run } from '../os/exec.ts';
import { writeFileAtomic } from '../os/durable-files.ts';
import { lookupUser } from '../os/users.ts';
import { certificateChecks } from '../cli/doctor-tls.ts';
import { AGENT_USER, AgentConfigSchema, assertCaCert, assertPushKey, checkSecretValue, DEFAULTS, parseConfigText, readApiKeyFile, type AgentConfig } from './config.ts';
import { register, writeConfigAtomic } from './register.ts';
import { defaultApiKeyFile, ENROLL_TOKEN_ENV, readEnrollToken, storeApiKey, updateConfigText } from './secrets.ts';
import { planSshSetup, sshSetup, type SshSetupOptions } from './ssh-setup.ts';

export type Mode = 'pull' | 'push' | 'ssh';

/** The answers as flags; SSH mode's are ssh-setup's own. */
export interface SetupOptions extends Omit<SshSetupOptions, 'dryRun'> {
  config: string;
  mode?: string;
  serverUrl?: string;
  /** Pull mode: the CA of the server's certificate. */
  caCert?: string;
  /** Push mode: the CA of the server's client certificates (ca_cert in push mode). */
  clientCa?: string;
  sslCert?: string;
  sslKey?: string;
  listenHost?: string;
  listenPort?: string;
  /** A file holding the enrollment token ("-": standard input). */
  enrollmentTokenFile?: string;
  /** Push mode: a file holding the api_key the server sends (0600); generated when absent. */
  apiKeyFile?: string;
  /** false with --no-register: pull mode writes the config and does not enroll. */
  register: boolean;
  dryRun?: boolean;
  yes?: boolean;
  nonInteractive?: boolean;
}

export interface SetupIo {
  out: (s: string) => void;
  /** The terminal to ask on; null: never ask (not a terminal, or --non-interactive). */
  terminal: Prompter | null;
  version: string;
  env?: NodeJS.ProcessEnv;
}

/** Asks questions on a terminal: answers are validated by the caller; secrets are not echoed. */
export class Prompter {
  private readonly rl: readline.Interface;
  private readonly lines: AsyncIterator<string>;
  private muted = false;

  constructor(
    input: NodeJS.ReadableStream,
    private readonly output: NodeJS.WritableStream,
  ) {
    // readline echoes what is typed through this stream: muted, a secret never reaches the screen.
    const echo = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (!this.muted) output.write(chunk);
        cb();
      },
    });
    this.rl = readline.createInterface({ input, output: echo, terminal: true });
    // Lines typed ahead of a question are queued, not lost.
    this.lines = this.rl[Symbol.asyncIterator]();
    this.rl.on('SIGINT', () => {
      // Nothing is written before the last answer: stopping here leaves everything as it was.
      this.output.write('\n');
      this.rl.close();
      process.exit(130);
    });
  }

  /** One line of answer; `secret`: not echoed. */
  async ask(question: string, secret = false): Promise<string> {
    this.rl.setPrompt(question);
    this.rl.prompt();
    this.muted = secret;
    let r: IteratorResult<string>;
    try {
      r = await this.lines.next();
    } finally {
      this.muted = false;
    }
    if (secret) this.output.write('\n');
    if (r.done) throw new ConfigError(`cannot set up the agent: the input ended before an answer to "${question.trim()}"`);
    return r.value.trim();
  }

  say(text: string): void {
    this.output.write(text);
  }

  close(): void {
    this.rl.close();
  }
}

const NONE = 'none';

interface Question<T> {
  /** The flag that gives the answer, named in messages. */
  flag: string;
  /** What is asked, e.g. "server URL". */
  what: string;
  /** The default shown and taken for an empty answer (the current config's value). */
  def: string | null;
  /** An unset answer ("none") is allowed. */
  optional?: boolean;
  secret?: boolean;
  /** The question says itself what an empty answer means. */
  noHint?: boolean;
  parse: (answer: string) => T;
}

/**
 * An answer from its flag, else asked on the terminal (until it is valid), else the default; a
 * needed value without any of these is an error naming its flag.
 */
async function resolve<T>(given: string | undefined, q: Question<T>, term: Prompter | null): Promise<T> {
  if (given !== undefined) return q.parse(given);
  if (term) {
    const hint = q.secret || q.noHint ? '' : q.def !== null ? ` [${q.def}]` : q.optional ? ` [${NONE}]` : '';
    for (;;) {
      const a = await term.ask(`${q.what}${hint}: `, q.secret);
      try {
        if (a === '' && q.def !== null) return q.parse(q.def);
        if (a === '' && q.optional) return q.parse(NONE);
        if (a === '') throw new ConfigError(`cannot set up the agent: ${q.what} is needed`);
        return q.parse(a);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        term.say(`  ${e.message}\n`);
      }
    }
  }
  if (q.def !== null) return q.parse(q.def);
  if (q.optional) return q.parse(NONE);
  throw new ConfigError(`cannot set up the agent: ${q.what} is needed: give ${q.flag} (standard input is not a terminal to ask on)`);
}

/** One key checked with the loader's schema; the message names the flag instead of a file. */
function schemaCheck(key: keyof AgentConfig, value: unknown, flag: string): void {
  try {
    validateAgainst(AgentConfigSchema, { [key]: value }, flag, { secrets: ['api_key'] });
  } catch (e) {
    throw new ConfigError((e as Error).message.replace(/^cannot load config /, 'cannot use '));
  }
}

function parseMode(a: string): Mode {
  if (a === 'pull' || a === 'push' || a === 'ssh') return a;
  throw new ConfigError(`cannot use --mode ${shown(a)}: the mode is pull, push or ssh`);
}

function parseUrl(a: string): string {
  const url = a.trim().replace(/\/+$/, '');
  if (!/^https:\/\/[^\s/]+/.test(url)) throw new ConfigError(`cannot use --server-url ${shown(a)}: the server URL must start with https:// (the agent never sends its key in the clear)`);
  schemaCheck('server_url', url, '--server-url');
  return url;
}

/** The doctor's check of one certificate or key (ca_cert, ssl_cert, ssl_key); throws its failure. */
function doctorCheck(name: 'ca_cert' | 'ssl_cert' | 'ssl_key', cfg: Partial<AgentConfig>, flag: string): void {
  const c = certificateChecks({ ...DEFAULTS, ...cfg }, new Date()).find((x) => x.name === name);
  if (c && c.ok === false) throw new ConfigError(`cannot use ${flag}: ${name} ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ''}`);
}

/** An absolute path to a regular file, checked with the schema; "none" is null when optional. */
function filePath(flag: string, key: 'ca_cert' | 'ssl_cert' | 'ssl_key', optional: boolean): (a: string) => string | null {
  return (a) => {
    if (a === NONE || a === '') {
      if (optional) return null;
      throw new ConfigError(`cannot set up the agent: ${flag} is needed`);
    }
    const p = path.resolve(a);
    schemaCheck(key, p, flag);
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(`cannot use ${flag} ${shown(p)}: ${code === 'ENOENT' ? 'no such file' : code}`);
    }
    if (!st.isFile()) throw new ConfigError(`cannot use ${flag} ${shown(p)}: not a regular file`);
    return p;
  };
}

function certPath(flag: string, key: 'ca_cert' | 'ssl_cert', optional: boolean): (a: string) => string | null {
  const base = filePath(flag, key, optional);
  return (a) => {
    const p = base(a);
    if (p !== null) doctorCheck(key, key === 'ca_cert' ? { ca_cert: p } : { ssl_cert: p, ssl_key: p }, flag);
    return p;
  };
}

/** A private key: the doctor's check that it is private and the key of `cert`. */
function keyPath(flag: string, cert: string | null): (a: string) => string | null {
  const base = filePath(flag, 'ssl_key', cert === null);
  return (a) => {
    const p = base(a);
    if (p !== null && cert === null) throw new ConfigError(`cannot use ${flag}: it goes with a certificate (--ssl-cert)`);
    if (p !== null) doctorCheck('ssl_key', { ssl_cert: cert, ssl_key: p }, flag);
    return p;
  };
}

/**
 * Whether the agent's user (its own uid and group) can read `file` (-r) or enter a directory (-x):
 * the agent reads them at start. Asked of the kernel as that user, so modes, owners, ACLs and
 * every directory above count as they will for the agent.
 */
async function agentCan(test: '-r' | '-x', file: string): Promise<boolean> {
  if (process.getuid?.() !== 0) return true;
  const u = await lookupUser(AGENT_USER);
  if (!u) throw new ConfigError(`cannot set up the agent: no user "${AGENT_USER}" (install.sh or the package creates it)`);
  const r = await run('/usr/bin/test', [test, file], { uid: u.uid, gid: u.gid, timeoutMs: 10_000 });
  return r.code === 0;
}

async function assertAgentReads(file: string, key: string): Promise<void> {
  if (await agentCan('-r', file)) return;
  const fix = key === 'ssl_key' ? `chown ${AGENT_USER}:${AGENT_USER} ${file} && chmod 0600 ${file}` : `chgrp ${AGENT_USER} ${file} && chmod 0640 ${file} (and let ${AGENT_USER} into its directory)`;
  throw new ConfigError(`cannot use ${key} ${shown(file)}: the agent's user "${AGENT_USER}" cannot read it (fix: ${fix})`);
}

/** An existing config directory must let the agent's user in (a missing one is made 0750 root:tuxsec). */
async function assertAgentEnters(dir: string): Promise<void> {
  if (!fs.existsSync(dir) || (await agentCan('-x', dir))) return;
  throw new ConfigError(`cannot use config directory ${shown(dir)}: the agent's user "${AGENT_USER}" cannot enter it, so it could not read agent.yaml (fix: chgrp ${AGENT_USER} ${dir} && chmod 0750 ${dir})`);
}

/** Reads the current config: its text and values (defaults for setup's questions), or none. */
function readCurrent(file: string): { text: string | null; cfg: AgentConfig | null } {
  const text = readConfigText(file, { optional: true });
  if (text === null) return { text: null, cfg: null };
  try {
    return { text, cfg: parseConfigText(text, file) };
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}; setup updates the existing file in place: correct it or move it away first`);
  }
}

/** What setup will do, shown before (and with --dry-run instead of) doing it. */
interface Plan {
  mode: Mode;
  text: string;
  cfg: AgentConfig;
  /** Push mode: the api_key and where it goes. */
  apiKey: { file: string; value: string; generated: boolean } | null;
  /** Pull mode: enroll with this server (token: undefined for a server that takes none). */
  enroll: { server: string; token: string | undefined } | null;
  ssh: SshSetupOptions | null;
}

/** agent.yaml's text for display: an api_key value (never one setup writes) is masked. */
export function maskSecrets(text: string): string {
  return text.replace(/^(api_key:[ \t]*)(?!null\b|~|$)\S.*$/gm, '$1"(hidden)"');
}

function registered(cfg: AgentConfig | null): boolean {
  if (!cfg || !cfg.agent_id) return false;
  if (cfg.api_key) return true;
  try {
    return cfg.api_key_file !== null && readApiKeyFile(cfg.api_key_file) !== null;
  } catch {
    return false;
  }
}

async function yesNo(term: Prompter, question: string, def: boolean): Promise<boolean> {
  for (;;) {
    const a = (await term.ask(`${question} [${def ? 'Y/n' : 'y/N'}]: `)).toLowerCase();
    if (a === '') return def;
    if (a === 'y' || a === 'yes') return true;
    if (a === 'n' || a === 'no') return false;
  }
}

async function planPull(o: SetupOptions, cur: AgentConfig | null, term: Prompter | null, env: NodeJS.ProcessEnv): Promise<{ values: Record<string, string | null>; enroll: Plan['enroll'] }> {
  if (o.clientCa !== undefined) throw new ConfigError('cannot use --client-ca in pull mode: it is push mode\'s CA of client certificates; pull mode\'s server CA is --ca-cert');
  const server = await resolve(o.serverUrl, { flag: '--server-url', what: 'server URL (https://...)', def: cur?.server_url ?? null, parse: parseUrl }, term);
  const ca = await resolve(o.caCert, { flag: '--ca-cert', what: `CA certificate of the server ("${NONE}": the system's CAs)`, def: cur?.ca_cert ?? null, optional: true, parse: certPath('--ca-cert', 'ca_cert', true) }, term);
  const cert = await resolve(o.sslCert, { flag: '--ssl-cert', what: `client certificate ("${NONE}": none)`, def: cur?.ssl_cert ?? null, optional: true, parse: certPath('--ssl-cert', 'ssl_cert', true) }, term);
  const key =
    cert === null && o.sslKey === undefined
      ? null
      : await resolve(o.sslKey, { flag: '--ssl-key', what: 'key of the client certificate', def: cur?.ssl_key ?? null, parse: keyPath('--ssl-key', cert) }, term);
  const values = { mode: 'pull', server_url: server, ca_cert: ca, ssl_cert: cert, ssl_key: key };
  if (!o.register) return { values, enroll: null };
  const tokenGiven = o.enrollmentTokenFile !== undefined || Boolean(env[ENROLL_TOKEN_ENV]);
  let token = readEnrollToken({ tokenFile: o.enrollmentTokenFile, env, fileFlag: '--enrollment-token-file' });
  const again = registered(cur) && cur!.server_url === server;
  if (again && !tokenGiven) {
    if (!term || !(await yesNo(term, `registered with ${server} as agent ${cur!.agent_id}; enroll again?`, false))) return { values, enroll: null };
  }
  if (token === undefined && term) {
    token = await resolve(undefined, {
      flag: '--enrollment-token-file',
      what: 'enrollment token (not shown; empty: the server requires none)',
      def: null,
      optional: true,
      secret: true,
      parse: (a) => (a === NONE || a === '' ? undefined : checkSecretValue(a, 'the enrollment token')),
    }, term);
  }
  return { values, enroll: { server, token } };
}

async function planPush(o: SetupOptions, cur: AgentConfig | null, term: Prompter | null): Promise<{ values: Record<string, string | number | null>; apiKey: NonNullable<Plan['apiKey']> }> {
  if (o.caCert !== undefined) throw new ConfigError('cannot use --ca-cert in push mode: push mode\'s ca_cert is the CA of the server\'s client certificates: give it as --client-ca');
  const host = await resolve(o.listenHost, { flag: '--listen-host', what: 'address to listen on', def: cur?.listen_host ?? DEFAULTS.listen_host, parse: (a) => (schemaCheck('listen_host', a, '--listen-host'), a) }, term);
  const port = await resolve(o.listenPort, {
    flag: '--listen-port',
    what: 'port to listen on',
    def: String(cur?.listen_port ?? DEFAULTS.listen_port),
    parse: (a) => {
      const n = /^\d{1,6}$/.test(a) ? Number(a) : a;
      schemaCheck('listen_port', n, '--listen-port');
      return n as number;
    },
  }, term);
  const cert = (await resolve(o.sslCert, { flag: '--ssl-cert', what: 'certificate the agent serves (PEM)', def: cur?.ssl_cert ?? null, parse: certPath('--ssl-cert', 'ssl_cert', false) }, term))!;
  const key = await resolve(o.sslKey, { flag: '--ssl-key', what: 'its private key (PEM, 0600)', def: cur?.ssl_key ?? null, parse: keyPath('--ssl-key', cert) }, term);
  const ca = await resolve(o.clientCa, {
    flag: '--client-ca',
    what: `CA of the server's client certificates ("${NONE}": no client certificate asked for)`,
    def: cur?.mode === 'push' ? cur.ca_cert : null,
    optional: true,
    parse: certPath('--client-ca', 'ca_cert', true),
  }, term);
  const file = cur?.api_key_file ?? defaultApiKeyFile(o.config);
  let existing: string | null = cur?.api_key ?? null;
  if (existing === null && cur?.api_key_file) existing = readApiKeyFile(cur.api_key_file);
  const fromFile = (a: string): { value: string; generated: boolean } => {
    if (a === NONE || a === '') return { value: existing ?? randomBytes(32).toString('base64url'), generated: existing === null };
    const p = path.resolve(a);
    let v: string | null;
    try {
      v = readApiKeyFile(p);
    } catch (e) {
      throw new ConfigError((e as Error).message.replace(/^cannot read api_key_file /, 'cannot use --api-key-file '));
    }
    if (v === null) throw new ConfigError(`cannot use --api-key-file ${shown(p)}: no such file`);
    return { value: v, generated: false };
  };
  const what = `file holding the api_key the server sends (empty: ${existing !== null ? 'keep the current one' : 'generate one'})`;
  const k = await resolve(o.apiKeyFile, { flag: '--api-key-file', what, def: null, optional: true, noHint: true, parse: fromFile }, term);
  return {
    values: { mode: 'push', listen_host: host, listen_port: port, ssl_cert: cert, ssl_key: key, ca_cert: ca, api_key: null, api_key_file: file },
    apiKey: { file, ...k },
  };
}

async function planSsh(o: SetupOptions, term: Prompter | null): Promise<SshSetupOptions> {
  let { authorizedKey, userCa } = o;
  if (authorizedKey === undefined && userCa === undefined && term) {
    const how = await resolve(undefined, {
      flag: '--authorized-key or --user-ca',
      what: 'the server logs in with a key (authorized key) or a certificate (user CA)? key/ca',
      def: 'key',
      parse: (a) => {
        if (a !== 'key' && a !== 'ca') throw new ConfigError(`cannot use ${shown(a)}: answer key or ca`);
        return a;
      },
    }, term);
    const file = await resolve(undefined, {
      flag: how === 'key' ? '--authorized-key' : '--user-ca',
      what: how === 'key' ? "the server's SSH public key file (.pub)" : "the OpenSSH user CA's public key file",
      def: null,
      parse: (a) => path.resolve(a),
    }, term);
    if (how === 'key') authorizedKey = file;
    else userCa = file;
  }
  if (authorizedKey === undefined && userCa === undefined) {
    throw new ConfigError('cannot set up SSH mode: give --authorized-key FILE (the server\'s public key) or --user-ca FILE (an OpenSSH user CA)');
  }
  const ssh: SshSetupOptions = { ...o, authorizedKey, userCa, dryRun: o.dryRun };
  try {
    await planSshSetup(ssh);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return ssh;
}

async function plan(o: SetupOptions, io: SetupIo): Promise<{ plan: Plan; old: string | null }> {
  const { text: oldText, cfg: cur } = readCurrent(o.config);
  const term = io.terminal;
  const mode = await resolve(o.mode, { flag: '--mode', what: 'mode: pull, push or ssh', def: cur?.mode ?? null, parse: parseMode }, term);
  let values: Record<string, string | number | null> = { mode };
  let apiKey: Plan['apiKey'] = null;
  let enroll: Plan['enroll'] = null;
  let ssh: SshSetupOptions | null = null;
  if (mode === 'pull') ({ values, enroll } = await planPull(o, cur, term, io.env ?? process.env));
  else if (mode === 'push') ({ values, apiKey } = await planPush(o, cur, term));
  else ssh = await planSsh(o, term);
  const base = oldText ?? '# tuxsec-agent configuration, written by "tuxsec-agent setup" (every key: agent.yaml.example)\n';
  let text = updateConfigText(base, values);
  // A key in agent.yaml (the seed's place) is readable by the socket group: moved to the
  // credentials file when pull mode keeps its registration, dropped in SSH mode (no agent runs).
  if (apiKey === null && cur?.api_key) {
    if (mode === 'pull' && enroll === null) {
      apiKey = { file: cur.api_key_file ?? defaultApiKeyFile(o.config), value: cur.api_key, generated: false };
      text = updateConfigText(text, { api_key: null, api_key_file: apiKey.file });
    } else {
      text = updateConfigText(text, { api_key: null });
    }
  }
  // The whole file as the agent will load it: nothing is written that the agent would refuse.
  const cfg = parseConfigText(text, o.config);
  assertCaCert(cfg, o.config);
  if (apiKey !== null) assertPushKey({ ...cfg, api_key: apiKey.value });
  for (const c of certificateChecks(cfg, new Date())) {
    if (c.ok === false) throw new ConfigError(`cannot set up the agent: ${c.name} ${c.detail} (fix: ${c.fix})`);
  }
  await assertAgentEnters(path.dirname(path.resolve(o.config)));
  for (const key of ['ca_cert', 'ssl_cert', 'ssl_key'] as const) {
    const f = cfg[key];
    if (f !== null && mode !== 'ssh') await assertAgentReads(f, key);
  }
  return { plan: { mode, text, cfg, apiKey, enroll, ssh }, old: oldText };
}

function certDays(file: string | null): string {
  if (file === null) return '';
  try {
    return `, valid until ${new Date(new X509Certificate(fs.readFileSync(file)).validTo).toISOString()}`;
  } catch {
    return '';
  }
}

function describe(p: Plan, o: SetupOptions): string {
  let s = `# ${o.config} (mode 0640, owner root:${AGENT_USER})\n${maskSecrets(p.text)}`;
  if (!s.endsWith('\n')) s += '\n';
  if (p.apiKey) s += `# ${p.apiKey.file} (mode 0600, owner ${AGENT_USER}:${AGENT_USER}): the api_key${p.apiKey.generated ? ', generated' : ''} (hidden)\n`;
  if (p.enroll) s += `# then enroll with ${p.enroll.server}${p.enroll.token === undefined ? ' without a token' : ' with the enrollment token (hidden)'}: agent_id and api_key_file go into ${o.config}, the api_key into ${p.cfg.api_key_file ?? defaultApiKeyFile(o.config)}\n`;
  if (p.mode === 'push') s += `# serving ${p.cfg.ssl_cert}${certDays(p.cfg.ssl_cert)}${p.cfg.ca_cert === null ? '; no client certificate asked for (--client-ca)' : ''}\n`;
  return s;
}

function nextSteps(p: Plan, o: SetupOptions): string {
  const doctor = `  sudo tuxsec-cli doctor${o.config === '/etc/tuxsec/agent.yaml' ? '' : ` --agent-config ${o.config}`}\n`;
  if (p.mode === 'ssh') return `next steps:\n  sudo systemctl reload ssh\n${doctor}(SSH mode runs no agent process: the server logs in as ${o.user} and tuxsec-shell runs its commands)\n`;
  let s = 'next steps:\n  sudo systemctl enable --now tuxsec-agent\n' + doctor;
  if (p.mode === 'push' && p.apiKey) {
    s += `give the TuxSec server this agent's address (https://<this host>:${p.cfg.listen_port}) and the api_key in ${p.apiKey.file}`;
    s += p.cfg.ca_cert === null ? '\n' : `, and a client certificate signed by ${p.cfg.ca_cert}\n`;
  }
  return s;
}

/** A missing config directory is made as install.sh makes /etc/tuxsec: 0750 root:tuxsec. */
async function ensureConfigDir(dir: string): Promise<void> {
  if (fs.existsSync(dir)) return;
  const u = await lookupUser(AGENT_USER);
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(dir, { mode: 0o750 });
  if (u) fs.chownSync(dir, 0, u.gid);
}

/** The config file's bytes and owner before setup, to put back if enrolling fails. */
function snapshot(file: string, text: string | null): () => void {
  if (text === null) return () => fs.rmSync(file, { force: true });
  const st = fs.statSync(file);
  return () => writeFileAtomic(file, text, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
}

/** Runs the wizard: asks or takes the flags, checks everything, then writes (or, dry, prints). */
export async function setup(o: SetupOptions, io: SetupIo): Promise<void> {
  if (!o.dryRun && process.getuid?.() !== 0) throw new ConfigError('cannot set up the agent: run it as root (it writes root-owned files and gives the api_key to the tuxsec user), or with --dry-run');
  const { plan: p, old } = await plan(o, io);
  const shownPlan = describe(p, o);
  if (o.dryRun) {
    io.out(`dry run: nothing is written\n${shownPlan}`);
    if (p.ssh) await sshSetup(p.ssh, io.out);
    return;
  }
  if (io.terminal && !o.yes) {
    io.terminal.say(shownPlan);
    if (!(await yesNo(io.terminal, 'write this?', true))) {
      io.out('nothing written\n');
      return;
    }
  }
  await ensureConfigDir(path.dirname(path.resolve(o.config)));
  if (p.apiKey) await storeApiKey(p.apiKey.file, p.apiKey.value);
  const restore = snapshot(o.config, old);
  writeConfigAtomic(o.config, p.text, { seedOwner: true });
  io.out(`wrote ${o.config}${p.apiKey ? ` and ${p.apiKey.file}` : ''}\n`);
  if (p.enroll) {
    try {
      const r = await register({ configFile: o.config, server: p.enroll.server, token: p.enroll.token, version: io.version });
      io.out(r.message + '\n');
    } catch (e) {
      restore();
      const msg = (e as Error).message;
      throw new ConfigError(`${msg.startsWith('cannot') ? msg : `cannot register: ${msg}`}; ${o.config} is as it was`);
    }
  }
  if (p.ssh) await sshSetup({ ...p.ssh, dryRun: false }, io.out);
  io.out(nextSteps(p, o));
}
