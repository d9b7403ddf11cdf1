/**
 * tuxsec-cli: the command line over rootd's socket. Output and exit codes follow
 * INTEROP section 4 exactly, since the server's SSH mode parses them.
 *
 * Arguments are parsed with Node's own util.parseArgs: the CLI is started for every
 * SSH-mode call, and a parser that pulls in child_process costs more than the request.
 */
import { parseArgs } from 'node:util';
import { assertReadAction } from '../client/read-only.ts';
import { RootdClient } from '../client/rootd-client.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { DEFAULT_SOCKET } from '../protocol/messages.ts';
import { VERSION } from '../version.ts';
import { execute, operationCommand } from './operation.ts';
import { CLI_OPTIONS } from './options.ts';

const HELP = `Usage: tuxsec-cli [--socket PATH] <command> [arguments]

Command line for tuxsec-rootd (socket: --socket, env TUXSEC_SOCKET, default ${DEFAULT_SOCKET}).

Commands:
  system-info                         print system information (systeminfo get_info) as JSON
  list-modules                        list the available modules
  installed-modules                   list installed modules, loaded or not, as one JSON line
  module-info <module>                print a module's actions and parameters as JSON
  execute <module> <action> [options] run a module action; prints its data as JSON
      -p, --param key=value           a parameter (value tried as JSON first); repeatable
      -j, --json-params JSON          all parameters as one JSON object (--param is then ignored)
      --json                          accepted for the Python CLI; the output is JSON anyway
      --read-only                     refuse actions whose access class is not read (SSH mode)
      --no-wait                       a long-running action: print its operation id, do not wait
  operation status|result|cancel ID   follow up a long-running operation (JSON); result prints
                                      what execute would have printed
  operation list                      list the operations this user may see (root: all)
  ping                                check that tuxsec-rootd answers
  doctor [--json]                     check this host as the troubleshooting guide does; prints
                                      the fix for each failure (exit 1 when any check fails)
      --rootd-config FILE             rootd.yaml (default /etc/tuxsec/rootd.yaml)
      --agent-config FILE             agent.yaml (default /etc/tuxsec/agent.yaml)

Options:
  -s, --socket PATH                   rootd socket
  -h, --help                          show this help
  -V, --version                       show the version

Exit status: 0 on success; 1 with "Error: <message>" on stderr on failure; 2 on a usage error.
`;

class UsageError extends Error {}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * One line spaced as Python's json.dumps spaces it (`{"a": [1, 2]}`), as the Python CLI printed
 * installed-modules. Safe to respace: inside a JSON string a newline is always escaped.
 */
export function pythonJsonLine(value: unknown): string {
  return JSON.stringify(value, null, 1)
    .replace(/([[{])\n */g, '$1')
    .replace(/\n *([\]}])/g, '$1')
    .replace(/,\n */g, ', ');
}

/** Explains an error the way the troubleshooting guide does. */
function explain(err: unknown): string {
  if (!isTuxsecError(err)) return err instanceof Error ? err.message : String(err);
  if (err.code === ErrorCodes.moduleUnavailable && typeof err.details?.reason === 'string') {
    return `${err.message} (the module is installed but not available: ${err.details.reason})`;
  }
  return err.message;
}

/** `key=value` pairs, each value tried as JSON first, as the Python CLI does. */
export function parseParams(raw: string[]): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const item of raw) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid --param "${item}": expected key=value`);
    const text = item.slice(eq + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // not JSON: a plain string
    }
    out[item.slice(0, eq)] = value;
  }
  return out;
}

/** Checks the positional arguments of `cmd` against its usage, such as `<module> <action>`. */
function arity(cmd: string, args: string[], usage = ''): void {
  const n = usage ? usage.split(' ').length : 0;
  if (args.length === n) return;
  // The Python daemon's words for a missing module, so a script sees the same message either way.
  if (args.length === 0 && usage.startsWith('<module>')) throw new UsageError(`Module name is required (usage: tuxsec-cli ${cmd} ${usage})`);
  throw new UsageError(`${cmd} takes ${n === 0 ? 'no arguments' : `${n === 1 ? 'one argument' : 'two arguments'}: ${usage}`}`);
}

/**
 * The parameters of `execute`. As in the Python CLI, a non-empty --json-params gives them all
 * and any --param is ignored (said on stderr, since a value the user typed is dropped).
 */
function executeParams(param: string[] | undefined, json: string | undefined): Record<string, unknown> {
  if (!json) return parseParams(param ?? []);
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new UsageError('invalid --json-params: not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('invalid --json-params: must be a JSON object');
  if (param?.length) process.stderr.write('Warning: --param ignored: --json-params gives all the parameters\n');
  return v as Record<string, unknown>;
}

/** Resolves with the exit status when a command sets one (doctor), else with nothing (0). */
async function run(argv: string[]): Promise<number | void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: CLI_OPTIONS,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: o, positionals } = parsed;
  if (o.help) return void process.stdout.write(HELP);
  if (o.version) return void process.stdout.write(`${VERSION}\n`);
  const [cmd, ...args] = positionals;
  if (!cmd) throw new UsageError('missing command (see --help)');
  const paramsGiven = o.param !== undefined || o['json-params'] !== undefined;
  if ((paramsGiven || (o.json && cmd !== 'doctor')) && cmd !== 'execute') throw new UsageError('--param, --json-params and --json go with execute');
  if (o['no-wait'] && cmd !== 'execute') throw new UsageError('--no-wait goes with execute');
  if ((o['rootd-config'] !== undefined || o['agent-config'] !== undefined) && cmd !== 'doctor') throw new UsageError('--rootd-config and --agent-config go with doctor');

  const socketPath = o.socket ?? process.env.TUXSEC_SOCKET ?? DEFAULT_SOCKET;
  const client = new RootdClient({ socketPath });
  try {
    switch (cmd) {
      case 'system-info':
        arity(cmd, args);
        return print(await client.systemInfo());
      case 'list-modules': {
        arity(cmd, args);
        const mods = await client.listModules();
        return void process.stdout.write(`Available modules:\n${mods.map((m) => `  - ${m}\n`).join('')}`);
      }
      case 'installed-modules':
        arity(cmd, args);
        return void process.stdout.write(pythonJsonLine(await client.execute('systeminfo', 'list_modules')) + '\n');
      case 'module-info':
        arity(cmd, args, '<module>');
        return print(await client.moduleInfo(args[0]!));
      case 'execute': {
        arity(cmd, args, '<module> <action>');
        const params = executeParams(o.param, o['json-params']);
        if (o['read-only']) await assertReadAction(client, args[0]!, args[1]!);
        // coerce: the daemon converts these string-born values to the declared types.
        const r = await execute(client, { module: args[0]!, action: args[1]!, params, noWait: o['no-wait'] === true });
        return 'id' in r ? void process.stdout.write(`${r.id}\n`) : print(r.data);
      }
      case 'operation': {
        const sub = args[0];
        if (sub === 'list') arity('operation list', args.slice(1));
        else if (sub === 'status' || sub === 'result' || sub === 'cancel') arity(`operation ${sub}`, args.slice(1), '<id>');
        else throw new UsageError('operation takes status, result or cancel with an operation id, or list');
        return print(await operationCommand(client, sub, args[1]));
      }
      case 'ping': {
        arity(cmd, args);
        const t = performance.now();
        await client.ping();
        return void process.stdout.write(`pong from ${socketPath} in ${(performance.now() - t).toFixed(1)} ms\n`);
      }
      case 'doctor': {
        arity(cmd, args);
        // Loaded only now, from a bundle of its own: YAML, the config schemas and HTTPS would
        // add to the start-up of every other command (each SSH-mode call starts the CLI).
        const { runDoctor } = await import('./doctor.ts');
        return await runDoctor({
          socketPath,
          rootdConfig: o['rootd-config'],
          agentConfig: o['agent-config'],
          json: o.json === true,
        });
      }
      default:
        throw new UsageError(`unknown command "${cmd}" (see --help)`);
    }
  } finally {
    client.close();
  }
}

run(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status ?? 0;
  },
  (err) => {
    process.stderr.write(`Error: ${explain(err)}\n`);
    // 2 for a usage error, as argparse (the Python CLI's parser) exits.
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
