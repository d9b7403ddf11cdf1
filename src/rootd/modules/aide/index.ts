/**
 * The aide module: AIDE file integrity. init builds a database and puts it in place, check
 * compares the files with it (aide's JSON report, parsed into added, removed and changed files),
 * update accepts the current state. One aide run at a time: two would write the same database.
 */
import { mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineAction, type ActionContext, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { readFileSafe, writeFileAtomicSafe } from '../../../os/secure-files.ts';
import { ToolModule, executable, lastWords, longRunningFrom, runTool } from '../tool.ts';
import { AideConfigCache } from './config.ts';
import { parseAideReport, type AideReport } from './report.ts';

export const AideSettingsSchema = Type.Object(
  {
    config: Type.String({ default: '/etc/aide/aide.conf', pattern: '^/', maxLength: 4096, description: "aide's configuration file" }),
    binary: Type.String({ default: '/usr/bin/aide', pattern: '^/', maxLength: 4096, description: 'the aide program' }),
    report_file: Type.String({
      default: '/var/lib/tuxsec-rootd/aide-last-report.json',
      pattern: '^/',
      maxLength: 4096,
      description: 'where the last check or update result is kept (root only)',
    }),
    max_entries: Type.Integer({ default: 10_000, minimum: 1, maximum: 1_000_000, description: 'files listed per kind (added, removed, changed) in a result' }),
    timeout: Type.Integer({ default: 6 * 3600, minimum: 1, maximum: 7 * 86400, description: 'seconds one aide run may take' }),
  },
  { additionalProperties: false },
);



/** Largest JSON report read back (a report lists every changed file). */
const MAX_REPORT_BYTES = 256 * 1024 * 1024;

/** The result of check and update, and what last_report keeps. */
export interface AideRun extends AideReport {
  action: 'check' | 'update';
  finished_at: string;
}

const None = Params({});

export class AideModule extends ToolModule<typeof AideSettingsSchema> {
  private configCache: AideConfigCache;
  /** The aide run in progress ("check", "init", "update"), if any. */
  private running: string | null = null;

  constructor() {
    super('aide', AideSettingsSchema);
    this.configCache = new AideConfigCache(this.settings.binary, this.settings.config);
  }

  get name() {
    return 'aide';
  }
  get description() {
    return 'AIDE file integrity: build the database, check files against it, accept changes';
  }

  protected program() {
    return { file: this.settings.binary, what: 'aide', install: 'aide' };
  }

  protected override settingsChanged(): void {
    this.configCache = new AideConfigCache(this.settings.binary, this.settings.config);
  }

  protected defineActions(): AnyAction[] {
    // The operations' timeout follows the `timeout` setting: one setting suffices.
    const longRunning = longRunningFrom(() => this.settings.timeout);
    return [
      defineAction({
        name: 'get_status',
        description: 'Whether aide is installed, its version, and the database: present, age, size',
        params: None,
        access: 'read',
        shared: true,
        handler: (_p, ctx) => this.status(ctx),
      }),
      defineAction({
        name: 'get_config',
        description: "The module's settings and where aide's configuration puts the databases",
        params: None,
        access: 'read',
        shared: true,
        handler: async (_p, ctx) => {
          const c = await this.configCache.get(ctx);
          const { config, binary, report_file, max_entries, timeout } = this.settings;
          return { config, binary, report_file, max_entries, timeout, config_valid: c.ok, config_error: c.error, database_in: c.databases.in, database_out: c.databases.out };
        },
      }),
      defineAction({
        name: 'init',
        description: 'Build a new aide database of the current files and put it in place (replaces the database)',
        params: None,
        access: 'write',
        longRunning,
        handler: (_p, ctx) => this.exclusive('init', ctx, () => this.init(ctx)),
      }),
      defineAction({
        name: 'check',
        description: 'Compare the files with the aide database: added, removed and changed files with the attributes that changed',
        params: None,
        // write, not read: it holds the one aide slot for hours (a read_only user would block init and
        // update) and its result has every changed file's old and new hashes and attributes.
        access: 'write',
        longRunning,
        handler: (_p, ctx) => this.exclusive('check', ctx, () => this.compare('check', ctx)),
      }),
      defineAction({
        name: 'update',
        description: 'Accept the current state: report the differences and replace the database with the current files',
        params: None,
        access: 'write',
        longRunning,
        handler: (_p, ctx) => this.exclusive('update', ctx, () => this.compare('update', ctx)),
      }),
      defineAction({
        name: 'last_report',
        description: 'The result of the last check or update (null when there was none)',
        params: None,
        // The same attribute details as check; get_status gives read callers the summary.
        access: 'write',
        shared: true,
        handler: () => ({ report: this.lastReport() }),
      }),
    ];
  }

  private async exclusive<T>(what: string, ctx: ActionContext, fn: () => Promise<T>): Promise<T> {
    if (this.running) throw new TuxsecError(ErrorCodes.conflict, `cannot run aide ${what}: aide ${this.running} is running`);
    this.running = what;
    try {
      ctx.progress('reading configuration');
      return await fn();
    } finally {
      this.running = null;
    }
  }

  /** The database files; init and update need both as files, a check at least database_in. */
  private async databases(ctx: ActionContext, what: string): Promise<{ inFile: string; outFile: string }> {
    const c = await this.configCache.get(ctx);
    if (!c.ok) throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: aide refuses its configuration ${JSON.stringify(this.settings.config)}: ${c.error}`);
    const d = c.databases;
    if (d.inFile === null || d.outFile === null) {
      throw new TuxsecError(
        ErrorCodes.actionFailed,
        `cannot ${what}: ${JSON.stringify(this.settings.config)} must set database_in and database_out to file: URLs (has ${JSON.stringify(d.in)} and ${JSON.stringify(d.out)})`,
      );
    }
    return { inFile: d.inFile, outFile: d.outFile };
  }

  private aide(ctx: ActionContext, what: string, args: string[]) {
    return runTool(ctx, what, this.settings.binary, [`--config=${this.settings.config}`, ...args], {
      timeoutMs: this.settings.timeout * 1000,
      // aide's own text report goes to stdout when the configuration says so; we read the JSON one.
      maxOutputBytes: 1024 * 1024,
    });
  }

  /** Moves aide's new database over the one checks read. */
  private install(d: { inFile: string; outFile: string }, what: string) {
    try {
      if (!statSync(d.outFile).isFile()) throw new Error('not a regular file');
      renameSync(d.outFile, d.inFile);
    } catch (e) {
      throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: cannot move ${JSON.stringify(d.outFile)} to ${JSON.stringify(d.inFile)}: ${(e as Error).message}`);
    }
    const st = statSync(d.inFile);
    return { database: d.inFile, size: st.size, modified: st.mtime.toISOString() };
  }

  private async init(ctx: ActionContext) {
    const what = 'initialize the aide database';
    const d = await this.databases(ctx, what);
    ctx.progress('building database');
    const r = await this.aide(ctx, what, ['--init']);
    if (r.code !== 0) throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: aide exited with ${r.code ?? r.signal}: ${lastWords(r.stderr)}`);
    ctx.progress('installing database');
    return this.install(d, what);
  }

  private async compare(action: 'check' | 'update', ctx: ActionContext): Promise<AideRun & { database?: unknown }> {
    const what = action === 'check' ? 'check files with aide' : 'update the aide database';
    const d = await this.databases(ctx, what);
    try {
      statSync(d.inFile);
    } catch {
      throw new TuxsecError(ErrorCodes.notFound, `cannot ${what}: there is no aide database at ${JSON.stringify(d.inFile)} (run aide init first)`);
    }
    // A directory only root can read: the report lists file names of the whole system.
    const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-aide-'));
    try {
      const reportFile = path.join(dir, 'report.json');
      ctx.progress(action === 'check' ? 'checking files' : 'checking files and building the new database');
      // Report options apply to the report_url that follows them; the configuration's own reports stay as they are.
      const r = await this.aide(ctx, what, [
        action === 'check' ? '--check' : '--update',
        '--after=report_level=changed_attributes',
        '--after=report_format=json',
        `--after=report_url=file:${reportFile}`,
      ]);
      // 0 to 7: which of added (1), removed (2), changed (4) were found; above that an error.
      if (r.code === null || r.code > 7) throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: aide exited with ${r.code ?? r.signal}: ${lastWords(r.stderr)}`);
      ctx.progress('reading report');
      const text = readFileSafe(reportFile, MAX_REPORT_BYTES);
      if (text === null) throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: aide wrote no report`);
      const result: AideRun = { action, finished_at: new Date().toISOString(), ...parseAideReport(text, this.settings.max_entries) };
      this.keepReport(result, ctx);
      if (action === 'check') return result;
      ctx.progress('installing database');
      return { ...result, database: this.install(d, what) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private keepReport(result: AideRun, ctx: ActionContext) {
    try {
      writeFileAtomicSafe(this.settings.report_file, JSON.stringify(result));
    } catch (e) {
      // The result still goes back to the caller; only last_report will miss it.
      ctx.log.warn({ err: (e as Error).message, file: this.settings.report_file }, 'cannot keep the aide report');
    }
  }

  private lastReport(): AideRun | null {
    let text: string | null;
    try {
      text = readFileSafe(this.settings.report_file, MAX_REPORT_BYTES);
    } catch (e) {
      throw new TuxsecError(ErrorCodes.actionFailed, `cannot read the last aide report ${JSON.stringify(this.settings.report_file)}: ${(e as Error).message}`);
    }
    if (text === null) return null;
    try {
      return JSON.parse(text) as AideRun;
    } catch {
      throw new TuxsecError(ErrorCodes.actionFailed, `cannot read the last aide report ${JSON.stringify(this.settings.report_file)}: not JSON`);
    }
  }

  private async status(ctx: ActionContext) {
    const { binary, config } = this.settings;
    const installed = executable(binary);
    let version: string | null = null;
    if (installed) {
      const r = await runTool(ctx, 'read the aide version', binary, ['--version'], { timeoutMs: 15_000, maxOutputBytes: 64 * 1024 });
      version = /AIDE\s+v?([0-9][^\s]*)/.exec(r.stdout + r.stderr)?.[1] ?? null;
    }
    let database: { path: string; present: boolean; size: number | null; modified: string | null; age_seconds: number | null } | null = null;
    let configError: string | null;
    try {
      const c = await this.configCache.get(ctx);
      configError = c.error;
      const file = c.databases.inFile;
      if (file) {
        database = { path: file, present: false, size: null, modified: null, age_seconds: null };
        try {
          const st = statSync(file);
          Object.assign(database, { present: true, size: st.size, modified: st.mtime.toISOString(), age_seconds: Math.max(0, Math.round((Date.now() - st.mtimeMs) / 1000)) });
        } catch {
          // No database yet: present stays false.
        }
      }
    } catch (e) {
      if (e instanceof TuxsecError && e.code === ErrorCodes.interrupted) throw e;
      configError = (e as Error).message;
    }
    const last = this.lastReportOrNull();
    return {
      installed,
      binary,
      version,
      config,
      config_error: configError,
      database,
      running: this.running,
      last_check: last && { action: last.action, finished_at: last.finished_at, clean: last.clean, summary: last.summary },
    };
  }

  private lastReportOrNull(): AideRun | null {
    try {
      return this.lastReport();
    } catch {
      return null;
    }
  }
}
