/**
 * tuxsec-agent: the default command runs the agent (pull mode; push and SSH come next) as the
 * unprivileged tuxsec user; `register` enrolls it (run by root, which owns the config).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { RootdClient } from '../client/rootd-client.ts';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, parseConfigText, pinoLevel, type AgentConfig } from './config.ts';
import { ensureDir } from './durable.ts';
import { Executor } from './executor.ts';
import { HttpClient } from './http.ts';
import { Journal } from './journal.ts';
import { createLogger, type Logger } from './log.ts';
import { Outbox } from './outbox.ts';
import { AgentRejectedError, PullLoop } from './pull.ts';
import { machineId, register } from './register.ts';
import pkg from '../../package.json' with { type: 'json' };

const VERSION: string = pkg.version;

function fail(msg: string, code = 1): never {
  process.stderr.write(`tuxsec-agent: ${msg}\n`);
  process.exit(code);
}

/** Refuses a second agent on the same state_dir (its journal would be shared). */
function takePidLock(stateDir: string): void {
  const p = path.join(stateDir, 'agent.pid');
  try {
    const old = Number(fs.readFileSync(p, 'utf8').trim());
    if (Number.isInteger(old) && old > 0 && old !== process.pid) {
      let alive = false;
      try {
        process.kill(old, 0);
        alive = fs.readFileSync(`/proc/${old}/cmdline`, 'utf8').includes('tuxsec-agent');
      } catch {
        alive = false;
      }
      if (alive) fail(`cannot start: another tuxsec-agent (pid ${old}) uses state_dir ${stateDir}`);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(p, `${process.pid}\n`, { mode: 0o600 });
}

async function runPull(cfg: AgentConfig, log: Logger): Promise<void> {
  if (!cfg.server_url) fail('cannot run in pull mode: key "server_url" is not set');
  if (!cfg.agent_id || !cfg.api_key) fail('cannot run in pull mode: the agent is not registered (run "tuxsec-agent register --server URL --token TOKEN" as root)');
  try {
    ensureDir(cfg.state_dir, 0o700);
  } catch (e) {
    fail(`cannot use state_dir ${JSON.stringify(cfg.state_dir)}: ${(e as Error).message}`);
  }
  let journal: Journal;
  let outbox: Outbox;
  try {
    takePidLock(cfg.state_dir);
    journal = Journal.open(cfg.state_dir);
    outbox = Outbox.open(cfg.state_dir, {
      maxEntries: cfg.outbox_max_entries,
      maxBytes: cfg.outbox_max_bytes,
      warn: (m) => log.warn({}, m),
    });
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot use state_dir ${JSON.stringify(cfg.state_dir)}: ${msg}`);
  }
  const rootd = new RootdClient({ socketPath: cfg.rootd_socket });
  const executor = new Executor({ rootd, journal, sink: (r) => outbox.add(r), policy: cfg.policy, log });
  const interrupted = await executor.recover((id) => outbox.has(id));
  if (interrupted > 0) log.warn({ count: interrupted }, 'jobs interrupted by the last stop reported as interrupted');
  const http = new HttpClient({
    serverUrl: cfg.server_url,
    caCert: cfg.ca_cert,
    sslCert: cfg.ssl_cert,
    sslKey: cfg.ssl_key,
    apiKey: cfg.api_key,
  });
  const inv: Record<string, unknown> = { hostname: os.hostname(), version: VERSION };
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
  const ac = new AbortController();
  const stop = (sig: string) => {
    log.info({ signal: sig }, 'stopping');
    ac.abort();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
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
  await loop.flush();
  rootd.close();
  journal.close();
  await http.close();
  log.info({}, 'stopped');
}

async function runAgent(opts: { config: string; mode?: string }): Promise<void> {
  if (process.getuid?.() === 0) {
    fail('cannot run as root: the agent runs as the unprivileged "tuxsec" user (systemd: User=tuxsec); only "tuxsec-agent register" is run by root');
  }
  let cfg: AgentConfig;
  try {
    cfg = loadConfig(opts.config, opts.mode ? { mode: opts.mode } : {});
  } catch (e) {
    fail((e as Error).message);
  }
  if (cfg.mode !== 'pull') fail(`cannot run in mode "${cfg.mode}": not implemented yet (only "pull" is)`);
  const log = createLogger({ level: pinoLevel(cfg.log_level), file: cfg.log_file });
  try {
    if ((fs.statSync(opts.config).mode & 0o004) !== 0 && cfg.api_key) {
      log.warn({ config: opts.config }, 'the config is readable by every user and may hold the api_key: chmod 0640 it (owner root, group tuxsec)');
    }
  } catch {
    // loadConfig read it a moment ago
  }
  await runPull(cfg, log);
}

async function runRegister(opts: { server: string; token?: string; config: string }): Promise<void> {
  let modules: string[] | undefined;
  try {
    const sock = fs.existsSync(opts.config) ? parseConfigText(fs.readFileSync(opts.config, 'utf8'), opts.config).rootd_socket : undefined;
    const c = new RootdClient({ socketPath: sock, timeoutMs: 3000 });
    modules = await c.listModules().finally(() => c.close());
  } catch {
    modules = undefined;
  }
  try {
    const r = await register({ configFile: opts.config, server: opts.server, token: opts.token, version: VERSION, modules });
    process.stdout.write(r.message + '\n');
    if (r.status === 'pending-approval') process.exit(3);
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg.startsWith('cannot') ? msg : `cannot register: ${msg}`, e instanceof ConfigError ? 2 : 1);
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
  .action(async (o: { config: string; mode?: string }) => runAgent(o));
program
  .command('register')
  .description('enroll this machine with a TuxSec server and write agent_id/api_key into the config (run as root)')
  .requiredOption('--server <url>', 'server URL (https://...)')
  .option('--token <token>', 'enrollment token (not needed by a server that takes none)')
  .option('--config <file>', 'agent configuration to update', DEFAULT_CONFIG_PATH)
  .action(async (o: { server: string; token?: string; config: string }) => runRegister(o));

program.parseAsync(process.argv).catch((e: Error) => fail(e.message));
