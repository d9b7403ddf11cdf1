/**
 * tuxsec-shell: the restricted shell of SSH mode, in the spirit of git-shell. It is the `tuxsec`
 * user's login shell (`tuxsec-shell -c "<command>"`) or sshd's forced command (the client's
 * command in SSH_ORIGINAL_COMMAND). It parses the command line itself (./words.ts), never
 * through a shell, and runs only tuxsec-cli, in this process, plus the four probes the original
 * server sends before it trusts an agent (INTEROP section 4), and tuxsec-server's job form
 * (`tuxsec-cli execute ... --job-id`, ./job.ts), which runs through the agent's executor and
 * journal. Anything else is refused on stderr with exit status 126; so is a session beyond
 * max_sessions (./sessions.ts) and a tuxsec-cli command the server does not send (./cli-guard.ts),
 * and agent.yaml's policy applies to execute.
 *
 * Own options (in the forced command, e.g. `command="/usr/bin/tuxsec-shell --read-only"`):
 *   --read-only      run only actions of access class `read` (also `read_only: true` in the config)
 *   --config FILE    the settings file (default /etc/tuxsec/shell.yaml)
 */
import { existsSync, accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { refuseCliOptions, RefusedCommand, splitWords } from './words.ts';
import { DEFAULT_SOCKET } from '../protocol/messages.ts';
import { claimSession, DEFAULT_MAX_SESSIONS, DEFAULT_SESSIONS_DIR } from './sessions.ts';
import { isJobForm, SHELL_EXIT } from '../protocol/ssh-command.ts';

const REFUSED_EXIT = SHELL_EXIT.refused;
const DEV_NULL_STDERR = ' 2>/dev/null';
/** The CLI bundle lies beside this one, in dist/ or in the install prefix. */
const CLI_BUNDLE = path.join(__dirname, 'tuxsec-cli.cjs');
/** The PATH sshd gives a session on Debian, searched by the `which` probe. */
const SEARCH_PATH = ['/usr/local/bin', '/usr/bin', '/bin'];

interface Options {
  readOnly: boolean;
  config?: string;
}

/** Own options; anything else is a mistake in the forced command, so it is refused. */
function parseOwnOptions(args: string[], opts: Options): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--read-only') opts.readOnly = true;
    else if (a === '--config' && i + 1 < args.length) opts.config = args[++i];
    else throw new RefusedCommand(`cannot start tuxsec-shell: unknown option ${JSON.stringify(a.slice(0, 80))}`);
  }
}

/** The command line to run and the options, from argv and SSH_ORIGINAL_COMMAND. */
function commandLine(argv: string[], env: NodeJS.ProcessEnv): { line: string; opts: Options } {
  const opts: Options = { readOnly: false };
  const original = env.SSH_ORIGINAL_COMMAND;
  const c = argv.indexOf('-c');
  if (c >= 0) {
    parseOwnOptions(argv.slice(0, c), opts);
    const line = argv[c + 1];
    if (line === undefined || c + 2 !== argv.length) throw new RefusedCommand('cannot start tuxsec-shell: -c takes exactly one command line');
    // As login shell under a forced command, sshd runs `tuxsec-shell -c "<forced command>"`:
    // when that names tuxsec-shell itself, its words are our options and the client's command
    // is SSH_ORIGINAL_COMMAND.
    if (/^(\S*\/)?tuxsec-shell(\s|$)/.test(line)) {
      parseOwnOptions(splitWords(line).slice(1), opts);
      if (original === undefined) throw new RefusedCommand('cannot start an interactive session: tuxsec-shell runs only tuxsec-cli commands');
      return { line: original, opts };
    }
    return { line, opts };
  }
  parseOwnOptions(argv, opts);
  if (original === undefined) throw new RefusedCommand('cannot start an interactive session: tuxsec-shell runs only tuxsec-cli commands');
  return { line: original, opts };
}

function which(): string | null {
  for (const d of SEARCH_PATH) {
    const f = path.join(d, 'tuxsec-cli');
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      // not in this directory
    }
  }
  // A source tree: the launcher beside dist/.
  const f = path.join(__dirname, '..', 'bin', 'tuxsec-cli');
  return existsSync(f) ? f : null;
}

interface Settings {
  socket: string;
  maxSessions: number;
  sessionsDir: string;
  /** agent.yaml, for its policy (undefined: the default path). */
  agentConfig?: string;
}

/** shell.yaml's settings or the defaults: the socket never from TUXSEC_SOCKET, which a login environment could set. */
async function settings(opts: Options): Promise<Settings> {
  if (opts.config === undefined && !existsSync('/etc/tuxsec/shell.yaml')) return { socket: DEFAULT_SOCKET, maxSessions: DEFAULT_MAX_SESSIONS, sessionsDir: DEFAULT_SESSIONS_DIR };
  const { loadShellConfig } = await import('./config.ts');
  const cfg = loadShellConfig(opts.config);
  if (cfg.read_only) opts.readOnly = true;
  return { socket: cfg.socket ?? DEFAULT_SOCKET, maxSessions: cfg.max_sessions, sessionsDir: cfg.sessions_dir, agentConfig: cfg.agent_config };
}

async function main(): Promise<number> {
  const { line: full, opts } = commandLine(process.argv.slice(2), process.env);
  // The original server silences stderr of its probes; honoured as a fixed suffix, not parsed.
  const quiet = full.endsWith(DEV_NULL_STDERR);
  const words = splitWords(quiet ? full.slice(0, -DEV_NULL_STDERR.length) : full);
  const [cmd, ...args] = words;
  const set = await settings(opts);
  const socket = set.socket;
  claimSession(set.sessionsDir, set.maxSessions);
  const key = words.join(' ');
  if (key === 'echo test') {
    process.stdout.write('test\n');
    return 0;
  }
  if (key === 'which tuxsec-cli') {
    const f = which();
    if (f) process.stdout.write(`${f}\n`);
    return f ? 0 : 1;
  }
  if (key === 'cat /etc/os-release') {
    process.stdout.write(readFileSync('/etc/os-release').subarray(0, 64 * 1024));
    return 0;
  }
  if (key === 'systemctl is-active tuxsec-rootd') {
    // Asks rootd itself: active means it answers, whatever started it.
    const { RootdClient } = await import('../client/rootd-client.ts');
    const client = new RootdClient({ socketPath: socket, timeoutMs: 5000 });
    const up = await client.ping().then(
      () => true,
      () => false,
    );
    client.close();
    process.stdout.write(up ? 'active\n' : 'inactive\n');
    // systemctl's status for a unit that is not active.
    return up ? 0 : 3;
  }
  if (cmd !== 'tuxsec-cli' && cmd !== '/usr/bin/tuxsec-cli') {
    const shown = cmd === undefined ? 'an empty command' : `command ${JSON.stringify(cmd.slice(0, 80))}`;
    throw new RefusedCommand(`cannot run ${shown}: tuxsec-shell runs only tuxsec-cli and the server's probes`);
  }
  if (isJobForm(args)) {
    // Loaded only for a job: the probes and the other commands start without the executor.
    const { runJobForm } = await import('./job.ts');
    return runJobForm(args, { socket, readOnly: opts.readOnly, agentConfig: set.agentConfig });
  }
  refuseCliOptions(args);
  const { checkCliCommand } = await import('./cli-guard.ts');
  const refused = checkCliCommand(args, set.agentConfig);
  if (refused !== null) {
    // As tuxsec-cli reports a failed execute, which the server reads.
    process.stderr.write(`Error: ${refused}\n`);
    return 1;
  }
  const cliArgs = ['--socket', socket, ...(opts.readOnly ? ['--read-only'] : []), ...args];
  if (quiet) process.stderr.write = () => true;
  // In this process: no second Node start per call. The CLI sets process.exitCode itself.
  process.argv = [process.execPath, CLI_BUNDLE, ...cliArgs];
  // The CLI's own bundle, found at run time beside this one (never bundled in twice).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(CLI_BUNDLE);
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err) => {
    const msg = err instanceof RefusedCommand ? err.message : `cannot run command: ${(err as Error).message}`;
    process.stderr.write(`tuxsec-shell: ${msg}\n`);
    process.exitCode = REFUSED_EXIT;
  },
);
