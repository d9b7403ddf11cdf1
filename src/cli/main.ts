/**
 * tuxsec-cli: the command line over rootd's socket. Output and exit codes follow
 * INTEROP section 4 exactly, since the server's SSH mode parses them.
 */
import { Command, CommanderError } from 'commander';
import { RootdClient } from '../client/rootd-client.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { DEFAULT_SOCKET } from '../protocol/messages.ts';
import { VERSION } from '../version.ts';

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

/** `key=value` with the value tried as JSON first, as the Python CLI does. */
export function parseParam(raw: string, acc: Record<string, unknown>): Record<string, unknown> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new CommanderError(1, 'tuxsec.param', `invalid --param "${raw}": expected key=value`);
  const key = raw.slice(0, eq);
  const text = raw.slice(eq + 1);
  let value: unknown = text;
  try {
    value = JSON.parse(text);
  } catch {
    // not JSON: a plain string
  }
  const out = Object.create(null) as Record<string, unknown>;
  Object.assign(out, acc);
  out[key] = value;
  return out;
}

async function main(argv: string[]): Promise<number> {
  const holder: { client: RootdClient | null } = { client: null };
  const socketPath = () => program.opts<{ socket?: string }>().socket ?? process.env.TUXSEC_SOCKET ?? DEFAULT_SOCKET;
  const rootd = () => (holder.client ??= new RootdClient({ socketPath: socketPath() }));
  let code = 0;

  const program = new Command('tuxsec-cli')
    .description('Command line for tuxsec-rootd')
    .option('-s, --socket <path>', `rootd socket (env TUXSEC_SOCKET; default ${DEFAULT_SOCKET})`)
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('system-info')
    .description('print system information (systeminfo get_info) as JSON')
    .action(async () => print(await rootd().systemInfo()));
  program
    .command('list-modules')
    .description('list the available modules')
    .action(async () => {
      const mods = await rootd().listModules();
      process.stdout.write(`Available modules:\n${mods.map((m) => `  - ${m}\n`).join('')}`);
    });
  program
    .command('installed-modules')
    .description('list installed modules as JSON')
    .action(async () => print(await rootd().execute('systeminfo', 'list_modules')));
  program
    .command('module-info')
    .description("print a module's actions and parameters as JSON")
    .argument('<module>')
    .action(async (module: string) => print(await rootd().moduleInfo(module)));
  program
    .command('execute')
    .description('run a module action; prints its data as JSON')
    .argument('<module>')
    .argument('<action>')
    .option('-p, --param <key=value>', 'a parameter (value tried as JSON first); repeatable', parseParam, {})
    .option('-j, --json-params <json>', 'all parameters as one JSON object')
    .action(async (module: string, action: string, o: { param: Record<string, unknown>; jsonParams?: string }) => {
      let params: Record<string, unknown> = o.param;
      if (o.jsonParams !== undefined) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(o.jsonParams);
        } catch {
          throw new Error('invalid --json-params: not valid JSON');
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('invalid --json-params: must be a JSON object');
        params = { ...(parsed as Record<string, unknown>), ...params };
      }
      const res = await rootd().request('execute_command', { module, action, parameters: params, coerce: true });
      print(res.data);
    });
  program
    .command('ping')
    .description('check that tuxsec-rootd answers')
    .action(async () => {
      const t = performance.now();
      await rootd().ping();
      process.stdout.write(`pong from ${socketPath()} in ${(performance.now() - t).toFixed(1)} ms\n`);
    });

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      code = err.exitCode === 0 ? 0 : 1;
      if (err.code === 'tuxsec.param') process.stderr.write(`Error: ${err.message}\n`);
    } else {
      process.stderr.write(`Error: ${explain(err)}\n`);
      code = 1;
    }
  } finally {
    holder.client?.close();
  }
  return code;
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
