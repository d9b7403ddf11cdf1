/**
 * tuxsec-cli: the command line over rootd's socket. Output and exit codes follow
 * INTEROP section 4 exactly, since the server's SSH mode parses them.
 *
 * Arguments are parsed with Node's own util.parseArgs: the CLI is started for every
 * SSH-mode call, and a parser that pulls in child_process costs more than the request.
 */
import { parseArgs } from 'node:util';
import { RootdClient } from '../client/rootd-client.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { DEFAULT_SOCKET } from '../protocol/messages.ts';
import { VERSION } from '../version.ts';

const HELP = `Usage: tuxsec-cli [--socket PATH] <command> [arguments]

Command line for tuxsec-rootd (socket: --socket, env TUXSEC_SOCKET, default ${DEFAULT_SOCKET}).

Commands:
  system-info                         print system information (systeminfo get_info) as JSON
  list-modules                        list the available modules
  installed-modules                   list installed modules as JSON
  module-info <module>                print a module's actions and parameters as JSON
  execute <module> <action> [options] run a module action; prints its data as JSON
      -p, --param key=value           a parameter (value tried as JSON first); repeatable
      -j, --json-params JSON          all parameters as one JSON object
  ping                                check that tuxsec-rootd answers

Options:
  -s, --socket PATH                   rootd socket
  -h, --help                          show this help
  -V, --version                       show the version

Exit status: 0 on success; 1 with "Error: <message>" on stderr on failure.
`;

class UsageError extends Error {}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
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

function arity(cmd: string, args: string[], n: number, names: string): void {
  if (args.length !== n) throw new UsageError(`${cmd} takes ${n === 0 ? 'no arguments' : names}`);
}

async function run(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        socket: { type: 'string', short: 's' },
        param: { type: 'string', short: 'p', multiple: true },
        'json-params': { type: 'string', short: 'j' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: o, positionals } = parsed;
  if (o.help) return void process.stdout.write(HELP);
  if (o.version) return void process.stdout.write(`${VERSION}\n`);
  const [cmd, ...args] = positionals;
  if (!cmd) throw new UsageError('missing command (see --help)');
  if ((o.param || o['json-params'] !== undefined) && cmd !== 'execute') throw new UsageError('--param and --json-params go with execute');

  const socketPath = o.socket ?? process.env.TUXSEC_SOCKET ?? DEFAULT_SOCKET;
  const client = new RootdClient({ socketPath });
  try {
    switch (cmd) {
      case 'system-info':
        arity(cmd, args, 0, '');
        return print(await client.systemInfo());
      case 'list-modules': {
        arity(cmd, args, 0, '');
        const mods = await client.listModules();
        return void process.stdout.write(`Available modules:\n${mods.map((m) => `  - ${m}\n`).join('')}`);
      }
      case 'installed-modules':
        arity(cmd, args, 0, '');
        return print(await client.execute('systeminfo', 'list_modules'));
      case 'module-info':
        arity(cmd, args, 1, 'one argument: <module>');
        return print(await client.moduleInfo(args[0]!));
      case 'execute': {
        arity(cmd, args, 2, 'two arguments: <module> <action>');
        let params = parseParams(o.param ?? []);
        const json = o['json-params'];
        if (json !== undefined) {
          let v: unknown;
          try {
            v = JSON.parse(json);
          } catch {
            throw new UsageError('invalid --json-params: not valid JSON');
          }
          if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('invalid --json-params: must be a JSON object');
          params = { ...(v as Record<string, unknown>), ...params };
        }
        // coerce: the daemon converts these string-born values to the declared types.
        const res = await client.request('execute_command', { module: args[0], action: args[1], parameters: params, coerce: true });
        return print(res.data);
      }
      case 'ping': {
        arity(cmd, args, 0, '');
        const t = performance.now();
        await client.ping();
        return void process.stdout.write(`pong from ${socketPath} in ${(performance.now() - t).toFixed(1)} ms\n`);
      }
      default:
        throw new UsageError(`unknown command "${cmd}" (see --help)`);
    }
  } finally {
    client.close();
  }
}

run(process.argv.slice(2)).then(
  () => {
    process.exitCode = 0;
  },
  (err) => {
    process.stderr.write(`Error: ${explain(err)}\n`);
    process.exitCode = 1;
  },
);
