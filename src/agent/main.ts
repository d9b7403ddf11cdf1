/**
 * tuxsec-agent: the default command runs the agent (pull or push mode; SSH comes next) as the
 * unprivileged tuxsec user; `register` enrolls it (run by root, which owns the config).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { RootdClient } from '../client/rootd-client.ts';
import { ConfigError, readConfigText } from '../common/config-file.ts';
import { pinoLevel } from '../common/log-level.ts';
import { assertPrivateFile, DEFAULT_CONFIG_PATH, loadConfig, parseConfigText, type AgentConfig } from './config.ts';
import { ensureDir } from '../os/durable-files.ts';
import { accessClasses, Executor } from './executor.ts';
import { HttpClient } from './http.ts';
import { ProgressReporter } from './progress.ts';
import { Journal } from './journal.ts';
import { createLogger, type Logger } from './log.ts';
import { Outbox } from './outbox.ts';
import { agentHolding, holdJournalLock, PID_FILE } from './pid-lock.ts';
import { AgentRejectedError, PullLoop, type CheckinInventory } from './pull.ts';
import { PushServer } from './push.ts';
import { PushJobs } from './push-jobs.ts';
import { machineId, migrateSecrets, register } from './register.ts';
import { ENROLL_TOKEN_ENV, readEnrollToken } from './secrets.ts';
import { DEFAULT_SHELL_PATH, DEFAULT_SSHD_CONFIG, sshSetup, type SshSetupOptions } from './ssh-setup.ts';
import { Prompter, setup, type SetupOptions } from './setup.ts';
import pkg from '../../package.json' with { type: 'json' };

const VERSION: string = pkg.version;

function fail(msg: string, code = 1): never {
  process.stderr.write(`tuxsec-agent: ${msg}\n`);
  process.exit(code);
}

/** Refuses a second agent on the same state_dir (its journal would be shared). */
function takePidLock(stateDir: string): void {
  const old = agentHolding(stateDir);
  if (old !== null) fail(`cannot start: another tuxsec-agent (pid ${old}) uses state_dir ${stateDir}`);
  fs.writeFileSync(path.join(stateDir, PID_FILE), `${process.pid}\n`, { mode: 0o600 });
}

/**
 * Opens state_dir (pid lock, journal, and in pull mode the outbox) or exits with a message
 * naming it. Push mode keeps its answered results in the journal itself (fewer fsyncs per job).
 */
/** How long a stopping push agent lets running jobs finish (systemd's TimeoutStopSec is 90 s). */
const PUSH_STOP_GRACE_MS = 20_000;

function openState(cfg: AgentConfig, log: Logger, mode: 'pull'): { journal: Journal; outbox: Outbox };
function openState(cfg: AgentConfig, log: Logger, mode: 'push'): { journal: Journal; outbox: null };
function openState(cfg: AgentConfig, log: Logger, mode: 'pull' | 'push'): { journal: Journal; outbox: Outbox | null } {
  try {
    ensureDir(cfg.state_dir, 0o700);
  } catch (e) {
    fail(`cannot use state_dir ${JSON.stringify(cfg.state_dir)}: ${(e as Error).message}`);
  }
  try {
    takePidLock(cfg.state_dir);
    if (!holdJournalLock(cfg.state_dir)) fail(`cannot start: an SSH-mode job (tuxsec-shell) is running with state_dir ${cfg.state_dir}; start the agent when it is done`);
    const bounds = { maxEntries: cfg.outbox_max_entries, maxBytes: cfg.outbox_max_bytes };
    if (mode === 'push') return { journal: Journal.open(cfg.state_dir, { keepResults: bounds }), outbox: null };
    const journal = Journal.open(cfg.state_dir);
    const outbox = Outbox.open(cfg.state_dir, { ...bounds, warn: (m) => log.warn({}, m) });
    return { journal, outbox };
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot use state_dir ${JSON.stringify(cfg.state_dir)}: ${msg}`);
  }
}

async function runPull(cfg: AgentConfig, log: Logger): Promise<void> {
  if (!cfg.server_url) fail('cannot run in pull mode: key "server_url" is not set');
  if (!cfg.agent_id || !cfg.api_key) fail('cannot run in pull mode: the agent is not registered (run "tuxsec-agent register --server URL --token-file FILE" as root)');
  const { journal, outbox } = openState(cfg, log, 'pull');
  const ac = new AbortController();
  const rootd = new RootdClient({ socketPath: cfg.rootd_socket });
  const http = new HttpClient({
    serverUrl: cfg.server_url,
    caCert: cfg.ca_cert,
    sslCert: cfg.ssl_cert,
    sslKey: cfg.ssl_key,
    apiKey: cfg.api_key,
  });
  const watch = new ProgressReporter(
    { agentId: cfg.agent_id, apiKey: cfg.api_key, minIntervalMs: cfg.progress_interval * 1000, maxIntervalMs: cfg.progress_interval * 3000 },
    { http, rootd, log },
  );
  const executor = new Executor({ rootd, journal, sink: (r) => outbox.add(r), policy: cfg.policy, log, signal: ac.signal, watch });
  const interrupted = await executor.recover((id) => outbox.has(id));
  if (interrupted > 0) log.warn({ count: interrupted }, 'jobs interrupted by the last stop reported as interrupted');
  const inv: CheckinInventory = { hostname: os.hostname(), version: VERSION };
  const mid = machineId();
  if (mid) inv.machine_id = mid;
  // Modules are inventory: asked of rootd at start, and again (at most once a minute) until known.
  let lastAsk = 0;
  const askModules = () => {
    if (inv.modules !== undefined || Date.now() - lastAsk < 60_000) return;
    lastAsk = Date.now();
    rootd
      .listModules()
      .then((m) => {
        inv.modules = m;
      })
      .catch((e: Error) => log.warn({}, `cannot list rootd modules: ${e.message}`));
  };
  askModules();
  const loop = new PullLoop(
    { agentId: cfg.agent_id, apiKey: cfg.api_key, pollInterval: cfg.poll_interval },
    {
      http,
      executor,
      outbox,
      inventory: () => {
        askModules();
        return inv;
      },
      log,
    },
  );
  const stop = (sig: string) => {
    log.info({ signal: sig }, 'stopping');
    ac.abort();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Node's default for SIGHUP is to exit: a `kill -HUP` meant for a push-mode agent, or a closed
  // terminal, must not stop a pull agent. Pull mode reads its config at start only.
  process.on('SIGHUP', () => log.warn({}, 'SIGHUP: pull mode re-reads nothing; restart the agent to apply a changed config'));
  log.info(
    { server_url: cfg.server_url, agent_id: cfg.agent_id, state_dir: cfg.state_dir, outbox: outbox.size, journal: journal.size, version: VERSION },
    'tuxsec-agent started in pull mode',
  );
  try {
    await loop.run(ac.signal);
  } catch (e) {
    if (e instanceof AgentRejectedError) {
      log.error({}, e.message);
      process.stderr.write(`tuxsec-agent: ${e.message}\n`);
      process.exit(4);
    }
    throw e;
  }
  watch.stop();
  await loop.flush();
  rootd.close();
  journal.close();
  await http.close();
  log.info({}, 'stopped');
}

/**
 * Push mode: serves INTEROP section 3 on listen_host:listen_port until SIGTERM. SIGHUP re-reads
 * the certificate, key and CA, and apart from them the api_key (a bad one is kept old and logged).
 */
async function runPush(cfg: AgentConfig, log: Logger, rereadKey: () => string | null): Promise<void> {
  if (cfg.ssl_cert === null || cfg.ssl_key === null) fail('cannot run in push mode: set ssl_cert and ssl_key (push mode always serves TLS)');
  if (!cfg.api_key) fail('cannot run in push mode: no api_key (set api_key_file, or run "tuxsec-agent register" as root)');
  const apiKey = cfg.api_key;
  const { journal } = openState(cfg, log, 'push');
  const ac = new AbortController();
  const rootd = new RootdClient({ socketPath: cfg.rootd_socket });
  const jobs = new PushJobs(rootd, log);
  const executor = new Executor({ rootd, journal, sink: 'journal', accessOf: accessClasses(rootd), policy: cfg.policy, log, signal: ac.signal, watch: jobs });
  const interrupted = await executor.recover(() => false);
  if (interrupted > 0) log.warn({ count: interrupted }, 'jobs interrupted by the last stop are answered as interrupted');
  let push: PushServer;
  try {
    push = new PushServer(
      { host: cfg.listen_host, port: cfg.listen_port, tls: { cert: cfg.ssl_cert, key: cfg.ssl_key, ca: cfg.ca_cert }, version: VERSION },
      { executor, journal, rootd, apiKey, log, jobs },
    );
    await push.listen();
  } catch (e) {
    fail(`cannot listen on ${cfg.listen_host}:${cfg.listen_port}: ${(e as Error).message}`);
  }
  if (cfg.ca_cert === null) {
    log.warn({}, 'ca_cert is not set: any client with the api_key is served, no client certificate is asked for');
  }
  // The TLS files and the api_key are re-read independently: a bad one must not keep the other
  // old (a key rotated because it leaked stays valid while a certificate is being fixed).
  process.on('SIGHUP', () => {
    try {
      push.reloadTls();
      log.info({}, 'SIGHUP: certificate, key and CA re-read; open connections are closed after their current answer');
    } catch (e) {
      log.error({}, `cannot reload the certificate, key or CA on SIGHUP: ${(e as Error).message}; the old ones are still used`);
    }
    try {
      const key = rereadKey();
      if (!key) throw new Error('no api_key (set api_key_file)');
      push.setApiKey(key);
      log.info({}, 'SIGHUP: api_key re-read');
    } catch (e) {
      log.error({}, `cannot reload the api_key on SIGHUP: ${(e as Error).message}; the old one is still used`);
    }
  });
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info(
    { listen: `${cfg.listen_host}:${cfg.listen_port}`, client_certificates: cfg.ca_cert !== null, state_dir: cfg.state_dir, journal: journal.size, version: VERSION },
    'tuxsec-agent started in push mode',
  );
  log.info({ signal: await stopped }, 'stopping');
  // Running jobs finish (their answers go out) before the agent stops; past the grace they are
  // aborted and answered interrupted, well within systemd's stop timeout.
  await push.close(PUSH_STOP_GRACE_MS, () => ac.abort());
  rootd.close();
  journal.close();
  log.info({}, 'stopped');
}

/**
 * An api_key still in agent.yaml (the seed's place, or written by hand) is readable by whoever can
 * read agent.yaml: normally the socket group. Still used, for compatibility, but said loudly.
 */
function warnKeyInConfig(file: string, log: Logger): void {
  try {
    const own = parseConfigText(readConfigText(file)!, file);
    const mode = fs.statSync(file).mode;
    if (own.api_key === null || (mode & 0o044) === 0) return;
    const msg = `the api_key is in ${file}, which ${mode & 0o004 ? 'every user' : 'its group (the socket group: every CLI user)'} can read, so they can act as this agent: run "tuxsec-agent migrate-secrets" as root to move it to a file only the agent reads`;
    log.warn({ config: file }, msg);
    process.stderr.write(`tuxsec-agent: warning: ${msg}\n`);
  } catch {
    // loadConfig read it a moment ago
  }
}

async function runAgent(opts: { config: string; mode?: string; checkConfig?: boolean }): Promise<void> {
  if (process.getuid?.() === 0 && !opts.checkConfig) {
    fail('cannot run as root: the agent runs as the unprivileged "tuxsec" user (systemd: User=tuxsec); only "tuxsec-agent register" is run by root');
  }
  let cfg: AgentConfig;
  const warnings: string[] = [];
  try {
    cfg = loadConfig(opts.config, { mode: opts.mode || undefined, warn: (m) => warnings.push(m) });
  } catch (e) {
    fail((e as Error).message);
  }
  if (cfg.mode === 'ssh') {
    // In SSH mode the server logs in as tuxsec and tuxsec-shell runs its commands: no agent process.
    process.stderr.write('tuxsec-agent: mode "ssh" needs no agent process: the server logs in over SSH as "tuxsec" and tuxsec-shell runs its tuxsec-cli commands; set it up with "tuxsec-agent ssh-setup" (README: SSH mode)\n');
    return;
  }
  try {
    if (cfg.ssl_key !== null) assertPrivateFile(cfg.ssl_key, 'ssl_key');
  } catch (e) {
    fail((e as Error).message);
  }
  // A check (root may run it) never opens log_file: the agent's user owns that directory and
  // could point a link there at any file root would then create or append to.
  const log = opts.checkConfig ? createLogger({ level: 'silent' }) : createLogger({ level: pinoLevel(cfg.log_level), file: cfg.log_file });
  for (const m of warnings) {
    log.warn({ config: opts.config }, m);
    process.stderr.write(`tuxsec-agent: warning: ${m}\n`);
  }
  warnKeyInConfig(opts.config, log);
  if (opts.checkConfig) {
    const where = cfg.mode === 'push' ? `listening on ${cfg.listen_host}:${cfg.listen_port}` : `server ${cfg.server_url ?? 'not set'}`;
    process.stdout.write(`${opts.config}: valid (mode ${cfg.mode}, ${where}, rootd socket ${cfg.rootd_socket})\n`);
    return;
  }
  if (cfg.mode === 'push') await runPush(cfg, log, () => loadConfig(opts.config, { mode: opts.mode || undefined }).api_key);
  else await runPull(cfg, log);
}

async function runRegister(opts: { server: string; token?: string; tokenFile?: string; config: string }): Promise<void> {
  let token: string | undefined;
  try {
    token = readEnrollToken({ token: opts.token, tokenFile: opts.tokenFile });
  } catch (e) {
    fail((e as Error).message, 2);
  }
  let modules: string[] | undefined;
  try {
    const sock = fs.existsSync(opts.config) ? parseConfigText(fs.readFileSync(opts.config, 'utf8'), opts.config).rootd_socket : undefined;
    const c = new RootdClient({ socketPath: sock, timeoutMs: 3000 });
    modules = await c.listModules().finally(() => c.close());
  } catch {
    modules = undefined;
  }
  try {
    const r = await register({ configFile: opts.config, server: opts.server, token, version: VERSION, modules });
    process.stdout.write(r.message + '\n');
    if (r.status === 'pending-approval') process.exit(3);
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot register: ${msg}`, e instanceof ConfigError ? 2 : 1);
  }
}

async function runMigrate(opts: { config: string }): Promise<void> {
  try {
    const { done, warnings } = await migrateSecrets(opts.config);
    for (const line of done) process.stdout.write(line + '\n');
    for (const line of warnings) process.stderr.write(`tuxsec-agent: warning: ${line}\n`);
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot move the agent's secrets out of ${opts.config}: ${msg}`, e instanceof ConfigError ? 2 : 1);
  }
}

const program = new Command();
program
  .name('tuxsec-agent')
  .description('TuxSec agent: runs jobs from a TuxSec server through tuxsec-rootd')
  .version(VERSION)
  .enablePositionalOptions()
  .option('--config <file>', 'agent configuration', DEFAULT_CONFIG_PATH)
  .addOption(new Option('--mode <mode>', 'connection mode (overrides the config)').choices(['pull', 'push', 'ssh']))
  .option('--check-config', 'validate the configuration (and the files it names), print its warnings and exit')
  .action(async (o: { config: string; mode?: string; checkConfig?: boolean }) => runAgent(o));
program
  .command('register')
  .description('enroll this machine with a TuxSec server (run as root): writes the api_key to a file only the agent\'s user reads, agent_id and api_key_file into the config')
  .requiredOption('--server <url>', 'server URL (https://...)')
  .option('--token-file <file>', 'read the enrollment token from FILE ("-": standard input)')
  .option('--token <token>', 'the enrollment token itself ("-": read it from standard input); visible in ps and the shell history, so prefer --token-file or $' + ENROLL_TOKEN_ENV)
  .option('--config <file>', 'agent configuration to update', DEFAULT_CONFIG_PATH)
  .addHelpText(
    'after',
    `
The token is needed only by a server that requires one. Give it at most once: --token-file FILE,
--token-file - (standard input), the environment variable ${ENROLL_TOKEN_ENV}, or --token.

  tuxsec-agent register --server https://tuxsec.example.com --token-file /root/enroll-token
  tuxsec-agent register --server https://tuxsec.example.com --token-file - < token.txt

(sudo VAR=value puts the value on sudo's own command line: under sudo, use a file or standard input.)`,
  )
  .action(async (o: { server: string; token?: string; tokenFile?: string; config: string }) => runRegister(o));
program
  .command('migrate-secrets')
  .description('move an api_key out of the config into the agent-only credentials file and make ssl_key 0600 tuxsec (run as root; install.sh and the package run it on upgrade)')
  .option('--config <file>', 'agent configuration', DEFAULT_CONFIG_PATH)
  .action(async (o: { config: string }) => runMigrate(o));

async function runSetup(o: SetupOptions): Promise<void> {
  // Asked only on a terminal; piped input is never taken for answers (a script gives flags), and
  // with --enrollment-token-file - standard input is the token's.
  const ask = !o.nonInteractive && o.enrollmentTokenFile !== '-' && process.stdin.isTTY && process.stdout.isTTY;
  const term = ask ? new Prompter(process.stdin, process.stdout) : null;
  try {
    await setup(o, { out: (s) => process.stdout.write(s), terminal: term, version: VERSION });
  } catch (e) {
    term?.close();
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot set up the agent: ${msg}`, e instanceof ConfigError ? 2 : 1);
  }
  term?.close();
}

/** SSH mode's options, shared by ssh-setup and setup (`tag` prefixes each for setup's help). */
function sshOptions(cmd: Command, tag: string): Command {
  return cmd
    .option('--authorized-key <file>', `${tag}the server's public key (.pub) to install into /etc/ssh/tuxsec/authorized_keys (or --authorized-keys-file)`)
    .option('--user-ca <file>', `${tag}an OpenSSH user CA public key to trust for USER (writes DIR/00-tuxsec.conf)`)
    .option('--principal <name...>', `${tag}with --user-ca: principals a certificate must name (default: USER)`)
    .option('--read-only', `${tag}the server may run only actions of access class read`)
    .option('--user <name>', `${tag}the SSH-mode user`, 'tuxsec')
    .option('--shell <path>', `${tag}tuxsec-shell's installed path`, DEFAULT_SHELL_PATH)
    .option('--shell-config <file>', `${tag}tuxsec-shell's config, when not /etc/tuxsec/shell.yaml`)
    .option('--authorized-keys-file <file>', `${tag}where sshd reads the user's keys (default /etc/ssh/tuxsec/authorized_keys; never inside the user's home)`)
    .option('--sshd-dir <dir>', `${tag}sshd drop-in directory (writes DIR/00-tuxsec.conf)`, '/etc/ssh/sshd_config.d')
    .option('--sshd-config <file>', `${tag}sshd's main config, which must include the drop-in (checked with sshd -t and sshd -T)`, DEFAULT_SSHD_CONFIG)
    .option('--keep-shell', `${tag}leave the user's login shell unchanged (a forced command then runs through it)`);
}

sshOptions(program
  .command('setup')
  .description('configure the agent for pull, push or SSH mode (run as root): asks on a terminal, or takes every answer as a flag; checks everything before writing agent.yaml (0640 root:tuxsec) and the api_key (0600 tuxsec)')
  .addOption(new Option('--mode <mode>', 'connection mode').choices(['pull', 'push', 'ssh']))
  .option('--config <file>', 'agent configuration to write (updated in place: comments and other keys are kept)', DEFAULT_CONFIG_PATH)
  .option('--server-url <url>', 'pull: the TuxSec server (https://...)')
  .option('--ca-cert <file>', 'pull: the CA of the server\'s certificate ("none": the system\'s CAs)')
  .option('--enrollment-token-file <file>', `pull: read the enrollment token from FILE ("-": standard input; or $${ENROLL_TOKEN_ENV}); never on the command line`)
  .option('--no-register', 'pull: write the config only; enroll later with "tuxsec-agent register"')
  .option('--ssl-cert <file>', 'push: the certificate the agent serves; pull: an optional client certificate ("none")')
  .option('--ssl-key <file>', 'the key of --ssl-cert (0600, readable by tuxsec)')
  .option('--listen-host <addr>', 'push: address to listen on (default 0.0.0.0)')
  .option('--listen-port <port>', 'push: port to listen on (default 8443)')
  .option('--client-ca <file>', 'push: the CA of the server\'s client certificates, then required ("none": not asked for)')
  .option('--api-key-file <file>', 'push: a file (0600) holding the api_key the server sends; default: keep the current one or generate one'), 'ssh: ')
  .option('--dry-run', 'print what would be written (secrets masked) and write nothing')
  .option('-y, --yes', 'on a terminal, write without asking for confirmation')
  .option('--non-interactive', 'never ask, even on a terminal: a missing answer is an error naming its flag')
  .addHelpText(
    'after',
    `
On a terminal, setup asks for each answer the flags do not give, offering the current config's
values as defaults, and shows what it will write before writing it. Without a terminal every
needed answer is a flag. Nothing is written unless the whole result is valid.

  sudo tuxsec-agent setup
  sudo tuxsec-agent setup --mode pull --server-url https://tuxsec.example.com \\
      --ca-cert /etc/tuxsec/certs/ca.crt --enrollment-token-file /root/enroll-token
  sudo tuxsec-agent setup --mode push --ssl-cert /etc/tuxsec/certs/agent.crt \\
      --ssl-key /etc/tuxsec/certs/agent.key --client-ca /etc/tuxsec/certs/ca.crt
  sudo tuxsec-agent setup --mode ssh --user-ca /root/tuxsec-user-ca.pub`,
  )
  .action(async (o: SetupOptions) => runSetup(o));

sshOptions(program
  .command('ssh-setup')
  .description('set up SSH mode (run as root): the server\'s key with restrict,command=tuxsec-shell, or an OpenSSH user CA through an sshd drop-in; makes tuxsec-shell the login shell'), '')
  .option('--dry-run', 'print the files instead of writing them')
  .action(async (o: SshSetupOptions) => sshSetup(o, (s) => process.stdout.write(s)));

program.parseAsync(process.argv).catch((e: Error) => fail(e.message));
