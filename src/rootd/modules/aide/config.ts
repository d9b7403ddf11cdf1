/**
 * Where aide's configuration puts its databases. aide resolves includes, variables and the
 * Debian `@@x_include` scripts itself, so we ask it (`--config-check` at log level `config`)
 * rather than reading aide.conf a second way; the answer is kept while the file is unchanged.
 */
import { statSync } from 'node:fs';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import type { ActionContext } from '../../../sdk/action.ts';
import { lastWords, runTool } from '../tool.ts';

export interface AideDatabases {
  /** database_in as aide has it (a URL). */
  in: string | null;
  out: string | null;
  /** The file of database_in when it is a `file:` URL. */
  inFile: string | null;
  outFile: string | null;
}

export interface ConfigCheck {
  ok: boolean;
  /** aide's complaint when the configuration is refused. */
  error: string | null;
  databases: AideDatabases;
}

/** The file a `file:` URL names, else null (stdin, fd:, http: databases are aide's business). */
export function fileOfUrl(url: string | null): string | null {
  if (url === null) return null;
  const m = /^file:(?:\/\/)?(\/.*)$/.exec(url);
  return m ? m[1]! : null;
}

// aide 0.18 at log level config: ` CONFIG: <file>:<n>: set 'database_in' option to '<url>' (line: '...')`.
const SET_OPTION = /set '(database_in|database|database_out)' option to '(.*?)' \(line: /;

/** The database URLs from aide's config log; the first setting of each wins, as in aide. */
export function databasesFromLog(log: string): AideDatabases {
  const found: Record<string, string> = {};
  for (const line of log.split('\n')) {
    const m = SET_OPTION.exec(line);
    if (!m) continue;
    const key = m[1] === 'database' ? 'database_in' : m[1]!;
    found[key] ??= m[2]!;
  }
  const inUrl = found.database_in ?? null;
  const outUrl = found.database_out ?? null;
  return { in: inUrl, out: outUrl, inFile: fileOfUrl(inUrl), outFile: fileOfUrl(outUrl) };
}

/** Asks aide about its configuration, once per version of the main config file. */
export class AideConfigCache {
  private key = '';
  private value: ConfigCheck | null = null;

  constructor(
    private readonly binary: string,
    private readonly config: string,
  ) {}

  async get(ctx: ActionContext): Promise<ConfigCheck> {
    let st;
    try {
      st = statSync(this.config);
    } catch {
      throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot read aide's configuration: ${JSON.stringify(this.config)} does not exist`);
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.value && key === this.key) return this.value;
    const r = await runTool(ctx, "check aide's configuration", this.binary, ['--config-check', `--config=${this.config}`, '--log-level=config'], {
      timeoutMs: 120_000,
      maxOutputBytes: 8 * 1024 * 1024,
    });
    const value: ConfigCheck = {
      ok: r.code === 0,
      error: r.code === 0 ? null : lastWords(r.stderr.split('\n').filter((l) => /^\s*ERROR:/.test(l)).join('\n') || `aide exited with ${r.code}`),
      databases: databasesFromLog(r.stderr + r.stdout),
    };
    this.key = key;
    this.value = value;
    return value;
  }
}
