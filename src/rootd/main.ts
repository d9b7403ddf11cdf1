/**
 * tuxsec-rootd: the root daemon. Runs only predeclared actions of its modules.
 */
import { closeSync } from 'node:fs';
import { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { ConfigError } from '../common/config-file.ts';
import { lookupGroup, lookupUser } from '../os/users.ts';
import { peerCred } from '../os/peercred.ts';
import { makeAccessPolicy, resolveUsers, type AccessRules, type ResolvedUsers } from './access.ts';
import { nullAudit, openAuditLog, type AuditLog, type AuditLogOptions, type AuditRecord } from './audit.ts';
import { DEFAULT_CONFIG_FILE, loadRootdConfig, moduleConfig, type RootdConfig } from './config.ts';
import { pinoLevel } from '../common/log-level.ts';
import { createDispatcher } from './dispatcher.ts';
import { Operations } from './operations.ts';
import { BUILTIN_MODULES } from './modules/index.ts';
import { LogDestination } from './log-file.ts';
import { InstalledModules } from './installed.ts';
import { loadPlugins } from './plugins.ts';
import { RateLimiter } from '../common/rate-limit.ts';
import { ModuleRegistry } from './registry.ts';
import { FairScheduler } from './scheduler.ts';
import { createRootdServer, type RootdServer } from './server.ts';
import { handedSocketGone, listenOnFd, listenOnPath, prepareSocketPath, removeSocket, systemdListenFd, SocketSetupError } from './socket.ts';
import { VERSION } from '../version.ts';

interface Options {
  config?: string;
  socket?: string;
  dev?: boolean;
  checkConfig?: boolean;
}

interface Users {
  allowed: ResolvedUsers;
  readOnly: ResolvedUsers;
}

/** What SIGHUP may change while the daemon runs; everything reads it through here. */
interface LiveState {
  cfg: RootdConfig;
  users: Users;
  rules: AccessRules;
}

function fail(msg: string): never {
  process.stderr.write(`tuxsec-rootd: ${msg}\n`);
  process.exit(1);
}

function parseOptions(): Options {
  const program = new Command('tuxsec-rootd')
    .description('TuxSec root daemon: runs predeclared module actions for clients on a Unix socket')
    .option('-c, --config <file>', `config file (default ${DEFAULT_CONFIG_FILE})`)
    .option('-s, --socket <path>', 'socket path (overrides the config)')
    .option('--dev', 'development mode: allow running without root (for the demo and tests)')
    .option('--check-config', 'validate the config and exit')
    .version(VERSION);
  program.parse();
  return program.opts<Options>();
}

/** rootd.yaml with --socket applied; exits naming what is wrong when it cannot be used. */
function loadConfig(opts: Options, configFile: string): RootdConfig {
  let cfg: RootdConfig;
  try {
    cfg = loadRootdConfig(configFile, opts.config !== undefined);
  } catch (e) {
    fail(e instanceof ConfigError ? e.message : `cannot load config: ${(e as Error).message}`);
  }
  if (opts.socket) {
    if (!opts.socket.startsWith('/') || Buffer.byteLength(opts.socket) > 107) fail(`invalid --socket "${opts.socket}": must be an absolute path of at most 107 bytes`);
    cfg.socket = opts.socket;
  }
  return cfg;
}

function openLog(cfg: RootdConfig): { logDest: LogDestination; log: Logger } {
  let logDest: LogDestination;
  try {
    logDest = new LogDestination(cfg.log_file);
  } catch (e) {
    fail(`cannot open log file ${cfg.log_file}: ${(e as Error).message}`);
  }
  return { logDest, log: pino({ name: 'tuxsec-rootd', level: pinoLevel(cfg.log_level), base: { pid: process.pid } }, logDest) };
}

/** The socket's group; none for a daemon that is not root (it cannot give the socket away). */
async function socketGid(cfg: RootdConfig, opts: Options, isRoot: boolean, configFile: string): Promise<number | null> {
  let gid: number | null = null;
  const group = await lookupGroup(cfg.socket_group);
  if (group) gid = group.gid;
  else if (!opts.dev) fail(`socket group "${cfg.socket_group}" does not exist: create it (install.sh does) or set socket_group in ${configFile}`);
  return isRoot ? gid : null;
}

async function resolveAllUsers(cfg: RootdConfig, log: Logger, previous?: Users): Promise<Users> {
  return {
    allowed: await resolveUsers(cfg.allowed_users, 'allowed_users', { lookup: lookupUser, log, previous: previous?.allowed }),
    readOnly: await resolveUsers(cfg.read_only_users, 'read_only_users', { lookup: lookupUser, log, previous: previous?.readOnly }),
  };
}

function rulesFor(u: Users, opts: Options, isRoot: boolean): AccessRules {
  const allowedUids = new Set(u.allowed.values());
  // The developer running a throw-away daemon is its own allowed user.
  if (opts.dev && !isRoot) allowedUids.add(process.getuid!());
  return { allowedUids, readOnlyUids: new Set(u.readOnly.values()) };
}

/** Names a uid for the audit log: looked up in the background, cached, unknown until the lookup is back. */
function cachedUserNames(): (uid: number) => string | undefined {
  const names = new Map<number, string | undefined>();
  return (uid) => {
    if (!names.has(uid)) {
      names.set(uid, undefined);
      lookupUser(uid).then(
        (u) => names.set(uid, u?.name),
        // Asked again on the next connection.
        () => names.delete(uid),
      );
    }
    return names.get(uid);
  };
}

/** Registers the built-in modules and the plugins, then initializes them all. */
async function startModules(live: LiveState, log: Logger): Promise<ModuleRegistry> {
  const scheduler = new FairScheduler(() => ({ maxConcurrent: live.cfg.max_concurrent_actions, maxQueuedPerUid: live.cfg.max_queued_per_uid }));
  const registry = new ModuleRegistry(log, makeAccessPolicy(() => live.rules), scheduler);
  const installed = new InstalledModules(log);
  const plugins = live.cfg.plugins_dir ? await loadPlugins(live.cfg.plugins_dir, log) : [];
  installed.registerAll(registry, BUILTIN_MODULES.map((make) => make()), plugins, (name) => moduleConfig(live.cfg, name));
  for (const name of Object.keys(live.cfg.modules)) {
    if (!installed.names().includes(name)) log.warn({ module: name }, 'config names a module that does not exist');
  }
  await registry.initializeAll((name, settings) => ({
    settings,
    log: log.child({ module: name }),
    installedModules: () => installed.report(registry.statuses()),
    moduleInfo: (n) => registry.info(n),
  }));
  return registry;
}

/** The audit log everyone writes through: SIGHUP may move it to another file, or turn it off. */
class SwitchableAudit implements AuditLog {
  private readonly opts: AuditLogOptions;
  private impl: AuditLog = nullAudit;

  constructor(log: Logger) {
    this.opts = {
      onError: (err) => log.error({ err: err.message }, 'cannot write the audit log; records are dropped and counted until it can be reopened'),
      onDrop: (why) =>
        why === 'slow' && log.error('the audit log cannot be written as fast as records come; records are dropped and counted until it catches up'),
    };
  }

  write(rec: AuditRecord): void {
    this.impl.write(rec);
  }

  reopen(): void {
    this.impl.reopen();
  }

  flush(): Promise<void> {
    return this.impl.flush();
  }

  /** Writes to this file from now on (null: auditing is off); throws, keeping the old one, when it cannot be opened. */
  switchTo(file: string | null): void {
    const opened = file ? openAuditLog(file, this.opts) : nullAudit;
    const old = this.impl;
    this.impl = opened;
    old.close?.();
  }
}

/**
 * Listens on the socket systemd handed over, or on one of our own at cfg.socket.
 * Returns the descriptor served (null: our own socket, removed at shutdown).
 */
async function listen(rootd: RootdServer, cfg: RootdConfig, gid: number | null, log: Logger): Promise<number | null> {
  let fd = systemdListenFd();
  const warn = (msg: string) => log.warn(msg);
  const gone = fd === null ? null : handedSocketGone(fd);
  if (gone) {
    // Clients connect by path: serve a socket of our own there (the impostor is removed on the way).
    warn(`the socket systemd handed over is no longer reachable at ${gone.path} (${gone.why}): binding a new one there; restart tuxsec-rootd.socket to hand one over again`);
    closeSync(fd!);
    fd = null;
    cfg.socket = gone.path;
  }
  try {
    if (fd !== null) {
      await listenOnFd(rootd.server, fd, { warn });
    } else {
      await prepareSocketPath({ socketPath: cfg.socket, gid, warn });
      await listenOnPath(rootd.server, { socketPath: cfg.socket, gid });
    }
  } catch (e) {
    fail(e instanceof SocketSetupError ? e.message : `cannot listen on ${cfg.socket}: ${(e as Error).message}`);
  }
  return fd;
}

/** What a running daemon needs to reload its config and to stop. */
interface Running {
  live: LiveState;
  log: Logger;
  logDest: LogDestination;
  audit: SwitchableAudit;
  registry: ModuleRegistry;
  operations: Operations;
  limiter: RateLimiter;
  rootd: RootdServer;
  stop: AbortController;
  ownSocket: boolean;
  /** Loads the config file again. */
  loadNext: () => RootdConfig;
  rulesOf: (u: Users) => AccessRules;
}

/** Finishes the requests in flight (cut after request_timeout), then stops the modules and exits. */
async function shutdown(d: Running, signal: string): Promise<void> {
  const { log, rootd, live } = d;
  log.info({ signal, inflight: rootd.inflight }, 'stopping: finishing requests in flight');
  rootd.server.close();
  const grace = setTimeout(() => d.stop.abort(), live.cfg.request_timeout * 1000);
  // Operations run for minutes: they are stopped now (recorded as interrupted), not waited for.
  await Promise.all([rootd.drain(), d.operations.stop()]);
  clearTimeout(grace);
  d.stop.abort();
  await d.registry.shutdownAll();
  if (d.ownSocket) removeSocket(live.cfg.socket);
  await d.audit.flush();
  log.info('stopped');
  d.logDest.flushSync();
  process.exit(0);
}

/** Follows a changed log_file; on failure keeps the old one and says so. */
function reloadLogFile(d: Running, next: RootdConfig): void {
  const { cfg } = d.live;
  if (next.log_file === cfg.log_file) {
    d.logDest.reopen();
    return;
  }
  try {
    d.logDest.switchTo(next.log_file);
    d.log.info({ log_file: next.log_file, was: cfg.log_file }, 'log_file changed');
  } catch (e) {
    d.log.error({ log_file: next.log_file, err: (e as Error).message }, `cannot open the new log_file; still logging to ${cfg.log_file ?? 'stderr'}`);
    next.log_file = cfg.log_file;
    d.logDest.reopen();
  }
}

/** Follows a changed audit_log; on failure keeps the old one and says so. */
function reloadAuditLog(d: Running, next: RootdConfig): void {
  const { cfg } = d.live;
  if (next.audit_log === cfg.audit_log) {
    d.audit.reopen();
    return;
  }
  try {
    d.audit.switchTo(next.audit_log);
    d.log.info({ audit_log: next.audit_log, was: cfg.audit_log }, next.audit_log ? 'audit_log changed' : 'audit_log set to null: auditing is off');
  } catch (e) {
    d.log.error({ audit_log: next.audit_log, err: (e as Error).message }, `cannot open the new audit_log; still auditing to ${cfg.audit_log}`);
    next.audit_log = cfg.audit_log;
    d.audit.reopen();
  }
}

/** Re-reads rootd.yaml. Whatever cannot be applied is logged as an error and left as it was. */
async function reload(d: Running): Promise<void> {
  const { live, log } = d;
  let next: RootdConfig;
  try {
    next = d.loadNext();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'configuration not reloaded; keeping the previous one');
    d.audit.reopen();
    d.logDest.reopen();
    return;
  }
  next.socket = live.cfg.socket; // the socket is fixed for the daemon's life
  reloadLogFile(d, next);
  reloadAuditLog(d, next);
  const nextUsers = await resolveAllUsers(next, log, live.users);
  d.registry.reconfigure((name) => moduleConfig(next, name));
  live.cfg = next;
  live.users = nextUsers;
  live.rules = d.rulesOf(live.users);
  d.limiter.configure(live.cfg.rate_limit.requests_per_second, live.cfg.rate_limit.burst);
  log.level = pinoLevel(live.cfg.log_level);
  log.info('configuration reloaded');
}

/** SIGTERM and SIGINT stop the daemon (once); SIGHUP reloads its config. */
function handleSignals(d: Running): void {
  let stopping = false;
  const stopOn = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void shutdown(d, signal);
  };
  process.on('SIGTERM', () => stopOn('SIGTERM'));
  process.on('SIGINT', () => stopOn('SIGINT'));
  // One reload at a time: a second SIGHUP during a slow user lookup waits its turn.
  let reloading: Promise<void> = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(() => reload(d)).catch((e) => d.log.error({ err: e instanceof Error ? e.stack : String(e) }, 'configuration reload failed'));
  });
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const isRoot = process.getuid?.() === 0;
  if (!isRoot && !opts.dev) fail('must run as root (use --dev for a throw-away development daemon)');
  const configFile = opts.config ?? DEFAULT_CONFIG_FILE;
  const cfg = loadConfig(opts, configFile);
  if (opts.checkConfig) {
    process.stdout.write(`config ${configFile} is valid\n`);
    return;
  }
  const { logDest, log } = openLog(cfg);
  const gid = await socketGid(cfg, opts, isRoot, configFile);
  const rulesOf = (u: Users) => rulesFor(u, opts, isRoot);
  const users = await resolveAllUsers(cfg, log);
  const live: LiveState = { cfg, users, rules: rulesOf(users) };
  const registry = await startModules(live, log);
  const audit = new SwitchableAudit(log);
  if (cfg.audit_log) {
    try {
      audit.switchTo(cfg.audit_log);
    } catch (e) {
      fail(`cannot open audit log ${cfg.audit_log}: ${(e as Error).message}`);
    }
  }
  const limiter = new RateLimiter(cfg.rate_limit.requests_per_second, cfg.rate_limit.burst);
  const stop = new AbortController();
  const operations = new Operations({
    file: cfg.operations_file,
    log,
    audit,
    limits: () => ({
      maxRunning: live.cfg.max_operations,
      maxRunningPerUid: live.cfg.max_operations_per_uid,
      resultTtlMs: live.cfg.operation_result_ttl * 1000,
      resultMaxBytesPerUid: live.cfg.operation_result_max_bytes,
    }),
  });
  operations.load();
  const dispatcher = createDispatcher({
    registry,
    log,
    audit,
    limiter,
    operations,
    stopping: stop.signal,
    limits: () => ({ maxDepth: live.cfg.max_json_depth, requestTimeoutMs: live.cfg.request_timeout * 1000 }),
  });
  const rootd = createRootdServer({
    dispatcher,
    log,
    audit,
    peerCred,
    userName: cachedUserNames(),
    rules: () => live.rules,
    limiter,
    limits: () => ({
      maxMessageBytes: live.cfg.max_message_bytes,
      maxConnections: live.cfg.max_connections,
      maxConnectionsPerUid: live.cfg.max_connections_per_uid,
      reservedConnections: live.cfg.reserved_connections,
      idleTimeoutMs: live.cfg.idle_timeout * 1000,
      maxInflightPerConnection: live.cfg.max_inflight_per_connection,
    }),
  });
  const fd = await listen(rootd, cfg, gid, log);
  // An accept failure (e.g. out of descriptors) is logged; it must not end the daemon.
  rootd.server.on('error', (e) => log.error({ err: e.message }, 'listening socket error'));
  log.info({ socket: fd !== null ? `fd ${fd} (systemd)` : cfg.socket, modules: registry.available(), version: VERSION }, 'tuxsec-rootd ready');
  const loadNext = () => loadRootdConfig(configFile, opts.config !== undefined);
  handleSignals({ live, log, logDest, audit, registry, operations, limiter, rootd, stop, ownSocket: fd === null, loadNext, rulesOf });
}

main().catch((e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)));
