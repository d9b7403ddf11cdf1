/**
 * tuxsec-rootd: the root daemon. Runs only predeclared actions of its modules.
 */
import { closeSync } from 'node:fs';
import { Command } from 'commander';
import pino from 'pino';
import { ConfigError } from '../common/config-file.ts';
import { lookupGroup, lookupUser } from '../os/users.ts';
import { peerCred } from '../os/peercred.ts';
import { makeAccessPolicy, resolveUsers, type AccessRules, type ResolvedUsers } from './access.ts';
import { nullAudit, openAuditLog, type AuditLog, type AuditLogOptions } from './audit.ts';
import { DEFAULT_CONFIG_FILE, loadRootdConfig, moduleConfig, type RootdConfig } from './config.ts';
import { pinoLevel } from '../common/log-level.ts';
import { createDispatcher } from './dispatcher.ts';
import { BUILTIN_MODULES } from './modules/index.ts';
import { LogDestination } from './log-file.ts';
import { InstalledModules } from './installed.ts';
import { loadPlugins } from './plugins.ts';
import { RateLimiter } from './rate-limit.ts';
import { ModuleRegistry } from './registry.ts';
import { FairScheduler } from './scheduler.ts';
import { createRootdServer } from './server.ts';
import { handedSocketGone, listenOnFd, listenOnPath, prepareSocketPath, removeSocket, systemdListenFd, SocketSetupError } from './socket.ts';
import { VERSION } from '../version.ts';

interface Options {
  config?: string;
  socket?: string;
  dev?: boolean;
  checkConfig?: boolean;
}

function fail(msg: string): never {
  process.stderr.write(`tuxsec-rootd: ${msg}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const program = new Command('tuxsec-rootd')
    .description('TuxSec root daemon: runs predeclared module actions for clients on a Unix socket')
    .option('-c, --config <file>', `config file (default ${DEFAULT_CONFIG_FILE})`)
    .option('-s, --socket <path>', 'socket path (overrides the config)')
    .option('--dev', 'development mode: allow running without root (for the demo and tests)')
    .option('--check-config', 'validate the config and exit')
    .version(VERSION);
  program.parse();
  const opts = program.opts<Options>();
  const isRoot = process.getuid?.() === 0;
  if (!isRoot && !opts.dev) fail('must run as root (use --dev for a throw-away development daemon)');

  const configFile = opts.config ?? DEFAULT_CONFIG_FILE;
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
  if (opts.checkConfig) {
    process.stdout.write(`config ${configFile} is valid\n`);
    return;
  }

  let logDest: LogDestination;
  try {
    logDest = new LogDestination(cfg.log_file);
  } catch (e) {
    fail(`cannot open log file ${cfg.log_file}: ${(e as Error).message}`);
  }
  const log = pino({ name: 'tuxsec-rootd', level: pinoLevel(cfg.log_level), base: { pid: process.pid } }, logDest);

  let gid: number | null = null;
  const group = await lookupGroup(cfg.socket_group);
  if (group) gid = group.gid;
  else if (!opts.dev) fail(`socket group "${cfg.socket_group}" does not exist: create it (install.sh does) or set socket_group in ${configFile}`);
  if (!isRoot) gid = null;

  let users: { allowed: ResolvedUsers; readOnly: ResolvedUsers } = {
    allowed: await resolveUsers(cfg.allowed_users, 'allowed_users', { lookup: lookupUser, log }),
    readOnly: await resolveUsers(cfg.read_only_users, 'read_only_users', { lookup: lookupUser, log }),
  };
  const rulesOf = (u: typeof users): AccessRules => {
    const allowedUids = new Set(u.allowed.values());
    // The developer running a throw-away daemon is its own allowed user.
    if (opts.dev && !isRoot) allowedUids.add(process.getuid!());
    return { allowedUids, readOnlyUids: new Set(u.readOnly.values()) };
  };
  let rules = rulesOf(users);
  const names = new Map<number, string | undefined>();
  const userName = (uid: number) => {
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

  const scheduler = new FairScheduler(() => ({ maxConcurrent: cfg.max_concurrent_actions, maxQueuedPerUid: cfg.max_queued_per_uid }));
  const registry = new ModuleRegistry(log, makeAccessPolicy(() => rules), scheduler);
  const installed = new InstalledModules(log);
  const plugins = cfg.plugins_dir ? await loadPlugins(cfg.plugins_dir, log) : [];
  installed.registerAll(registry, BUILTIN_MODULES.map((make) => make()), plugins, (name) => moduleConfig(cfg, name));
  for (const name of Object.keys(cfg.modules)) {
    if (!installed.names().includes(name)) log.warn({ module: name }, 'config names a module that does not exist');
  }
  await registry.initializeAll((name, settings) => ({
    settings,
    log: log.child({ module: name }),
    installedModules: () => installed.report(registry.statuses()),
  }));

  const auditOpts: AuditLogOptions = {
    onError: (err) => log.error({ err: err.message }, 'cannot write the audit log; records are dropped and counted until it can be reopened'),
    onDrop: (why) =>
      why === 'slow' && log.error('the audit log cannot be written as fast as records come; records are dropped and counted until it catches up'),
  };
  let auditImpl: AuditLog = nullAudit;
  if (cfg.audit_log) {
    try {
      auditImpl = openAuditLog(cfg.audit_log, auditOpts);
    } catch (e) {
      fail(`cannot open audit log ${cfg.audit_log}: ${(e as Error).message}`);
    }
  }
  // SIGHUP may move the audit log to another file: everyone writes through this.
  const audit: AuditLog = {
    write: (rec) => auditImpl.write(rec),
    reopen: () => auditImpl.reopen(),
    flush: () => auditImpl.flush(),
  };

  const limiter = new RateLimiter(cfg.rate_limit.requests_per_second, cfg.rate_limit.burst);
  const stop = new AbortController();
  const dispatcher = createDispatcher({
    registry,
    log,
    audit,
    limiter,
    stopping: stop.signal,
    limits: () => ({ maxDepth: cfg.max_json_depth, requestTimeoutMs: cfg.request_timeout * 1000 }),
  });
  const rootd = createRootdServer({
    dispatcher,
    log,
    audit,
    peerCred,
    userName,
    rules: () => rules,
    limiter,
    limits: () => ({
      maxMessageBytes: cfg.max_message_bytes,
      maxConnections: cfg.max_connections,
      maxConnectionsPerUid: cfg.max_connections_per_uid,
      reservedConnections: cfg.reserved_connections,
      idleTimeoutMs: cfg.idle_timeout * 1000,
      maxInflightPerConnection: cfg.max_inflight_per_connection,
    }),
  });

  let fd = systemdListenFd();
  let ownSocket = false;
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
      ownSocket = true;
    }
  } catch (e) {
    fail(e instanceof SocketSetupError ? e.message : `cannot listen on ${cfg.socket}: ${(e as Error).message}`);
  }
  // An accept failure (e.g. out of descriptors) is logged; it must not end the daemon.
  rootd.server.on('error', (e) => log.error({ err: e.message }, 'listening socket error'));
  log.info({ socket: fd !== null ? `fd ${fd} (systemd)` : cfg.socket, modules: registry.available(), version: VERSION }, 'tuxsec-rootd ready');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inflight: rootd.inflight }, 'stopping: finishing requests in flight');
    rootd.server.close();
    const grace = setTimeout(() => stop.abort(), cfg.request_timeout * 1000);
    await rootd.drain();
    clearTimeout(grace);
    stop.abort();
    await registry.shutdownAll();
    if (ownSocket) removeSocket(cfg.socket);
    await audit.flush();
    log.info('stopped');
    logDest.flushSync();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  /** Re-reads rootd.yaml. Whatever cannot be applied is logged as an error and left as it was. */
  const reload = async () => {
    let next: RootdConfig;
    try {
      next = loadRootdConfig(configFile, opts.config !== undefined);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'configuration not reloaded; keeping the previous one');
      auditImpl.reopen();
      logDest.reopen();
      return;
    }
    next.socket = cfg.socket; // the socket is fixed for the daemon's life
    if (next.log_file !== cfg.log_file) {
      try {
        logDest.switchTo(next.log_file);
        log.info({ log_file: next.log_file, was: cfg.log_file }, 'log_file changed');
      } catch (e) {
        log.error({ log_file: next.log_file, err: (e as Error).message }, `cannot open the new log_file; still logging to ${cfg.log_file ?? 'stderr'}`);
        next.log_file = cfg.log_file;
        logDest.reopen();
      }
    } else {
      logDest.reopen();
    }
    if (next.audit_log !== cfg.audit_log) {
      try {
        const opened = next.audit_log ? openAuditLog(next.audit_log, auditOpts) : nullAudit;
        const old = auditImpl;
        auditImpl = opened;
        old.close?.();
        log.info({ audit_log: next.audit_log, was: cfg.audit_log }, next.audit_log ? 'audit_log changed' : 'audit_log set to null: auditing is off');
      } catch (e) {
        log.error({ audit_log: next.audit_log, err: (e as Error).message }, `cannot open the new audit_log; still auditing to ${cfg.audit_log}`);
        next.audit_log = cfg.audit_log;
        auditImpl.reopen();
      }
    } else {
      auditImpl.reopen();
    }
    const nextUsers = {
      allowed: await resolveUsers(next.allowed_users, 'allowed_users', { lookup: lookupUser, log, previous: users.allowed }),
      readOnly: await resolveUsers(next.read_only_users, 'read_only_users', { lookup: lookupUser, log, previous: users.readOnly }),
    };
    registry.reconfigure((name) => moduleConfig(next, name));
    cfg = next;
    users = nextUsers;
    rules = rulesOf(users);
    limiter.configure(cfg.rate_limit.requests_per_second, cfg.rate_limit.burst);
    log.level = pinoLevel(cfg.log_level);
    log.info('configuration reloaded');
  };
  // One reload at a time: a second SIGHUP during a slow user lookup waits its turn.
  let reloading: Promise<void> = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(reload).catch((e) => log.error({ err: e instanceof Error ? e.stack : String(e) }, 'configuration reload failed'));
  });
}

main().catch((e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)));
