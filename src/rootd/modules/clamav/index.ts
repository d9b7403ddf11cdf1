/**
 * The clamav module: ClamAV virus scanning. scan goes through clamd when its socket answers
 * (signatures already in memory), else through clamscan; update_signatures runs freshclam.
 */
import { lstatSync, realpathSync } from 'node:fs';
import nodePath from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineAction, type ActionContext, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { AbsolutePath, ToolModule, executable, lastWords, longRunningFrom, runTool, stopped } from '../tool.ts';
import { parseClamscan, type Infected } from './clamscan-output.ts';
import { readSignatures } from './signatures.ts';
import { clamdScan, clamdVersion } from './clamd.ts';

const Program = (def: string) => Type.String({ default: def, pattern: '^/', maxLength: 4096 });

export const ClamavSettingsSchema = Type.Object(
  {
    database_dir: Type.String({ default: '/var/lib/clamav', pattern: '^/', maxLength: 4096, description: 'the signature databases' }),
    clamscan: Program('/usr/bin/clamscan'),
    freshclam: Program('/usr/bin/freshclam'),
    freshclam_config: Program('/etc/clamav/freshclam.conf'),
    clamd_socket: Type.Union([Type.String({ pattern: '^/', maxLength: 107 }), Type.Null()], {
      default: '/var/run/clamav/clamd.ctl',
      description: "clamd's socket (LocalSocket in clamd.conf); null never uses clamd",
    }),
    scan_timeout: Type.Integer({ default: 6 * 3600, minimum: 1, maximum: 7 * 86400, description: 'seconds one scan may take' }),
    update_timeout: Type.Integer({ default: 300, minimum: 1, maximum: 3600, description: 'seconds freshclam may take' }),
    scan_roots: Type.Array(Type.String({ pattern: '^/', maxLength: 4096 }), {
      default: ['/'],
      minItems: 1,
      maxItems: 64,
      description: 'directories scan may look in (symlinks resolved); read-only callers learn which files exist under them',
    }),
    max_results: Type.Integer({ default: 10_000, minimum: 1, maximum: 1_000_000, description: 'infected files and errors listed in a scan result' }),
  },
  { additionalProperties: false },
);


export interface ScanResult {
  /** "clamd" or "clamscan". */
  scanner: string;
  clean: boolean;
  infected: Infected[];
  /** Files scanned, as the scanner counts them (null when it does not say: clamd). */
  files_scanned: number | null;
  errors: string[];
  /** True when infected or errors was cut at max_results, or the scanner's output at its cap. */
  truncated: boolean;
}

const ScanParams = Params({
  paths: Type.Array(AbsolutePath('a file or directory to scan'), { minItems: 1, maxItems: 256, description: 'files and directories to scan (1 to 256 absolute paths)' }),
  recursive: Type.Optional(Type.Boolean({ description: 'scan directories recursively (default true)' })),
});
const None = Params({});

/** Most candidates of an ambiguous clamscan output confirmed one by one (each reloads the signatures). */
const MAX_CONFIRM = 32;

/** freshclam's words for "no mirror reachable" (curl's and its own). */
const UNREACHABLE = /Couldn't resolve host|Couldn't connect to server|Could not connect|Connection refused|Timeout was reached|Network is unreachable|Failed to get .* database version information|Can't download|Download failed/i;

export class ClamavModule extends ToolModule<typeof ClamavSettingsSchema> {
  constructor() {
    super('clamav', ClamavSettingsSchema);
  }

  get name() {
    return 'clamav';
  }
  get description() {
    return 'ClamAV virus scanning: scan files through clamd or clamscan, update signatures with freshclam';
  }

  protected program() {
    return { file: this.settings.clamscan, what: 'ClamAV', install: 'clamav' };
  }

  protected defineActions(): AnyAction[] {
    // The operations' timeouts follow the settings (scan_timeout, update_timeout): one setting suffices.
    return [
      defineAction({
        name: 'get_status',
        description: 'Whether clamscan, clamd and freshclam are there, engine and signature versions, signature age',
        params: None,
        access: 'read',
        shared: true,
        handler: (_p, ctx) => this.status(ctx),
      }),
      defineAction({
        name: 'get_config',
        description: "The module's settings",
        params: None,
        access: 'read',
        shared: true,
        handler: () => ({ ...this.settings }),
      }),
      defineAction({
        name: 'scan',
        description: 'Scan files and directories: infected files with their signature, files scanned, errors',
        params: ScanParams,
        access: 'read',
        longRunning: longRunningFrom(() => this.settings.scan_timeout),
        handler: (p, ctx) => this.scan(this.within([...new Set(p.paths)]), p.recursive !== false, ctx),
      }),
      defineAction({
        name: 'update_signatures',
        description: 'Download new signatures with freshclam',
        params: None,
        access: 'write',
        longRunning: longRunningFrom(() => this.settings.update_timeout),
        handler: (_p, ctx) => this.update(ctx),
      }),
    ];
  }

  private async status(ctx: ActionContext) {
    const s = this.settings;
    let engine: string | null = null;
    if (executable(s.clamscan)) {
      const r = await runTool(ctx, 'read the ClamAV version', s.clamscan, ['--version'], { timeoutMs: 30_000, maxOutputBytes: 64 * 1024 });
      engine = /ClamAV\s+([0-9][^/\s]*)/.exec(r.stdout)?.[1] ?? null;
    }
    const clamd = s.clamd_socket === null ? null : await clamdVersion(s.clamd_socket, ctx.signal);
    const files = readSignatures(s.database_dir);
    const daily = files.find((f) => f.name === 'daily') ?? null;
    const newest = files.reduce<string | null>((a, f) => (a === null || f.built > a ? f.built : a), null);
    return {
      clamscan: { path: s.clamscan, present: executable(s.clamscan) },
      freshclam: { path: s.freshclam, present: executable(s.freshclam) },
      clamd: { socket: s.clamd_socket, running: clamd !== null, version: clamd },
      engine_version: engine,
      database_dir: s.database_dir,
      signature_version: daily?.version ?? null,
      signatures_updated: newest,
      signature_age_seconds: newest === null ? null : Math.max(0, Math.round((Date.now() - Date.parse(newest)) / 1000)),
      databases: files,
    };
  }

  private async scan(paths: string[], recursive: boolean, ctx: ActionContext): Promise<ScanResult> {
    const s = this.settings;
    const max = s.max_results;
    // clamd's CONTSCAN always descends into directories: a scan that must not goes to clamscan.
    if (recursive && s.clamd_socket !== null && (await clamdVersion(s.clamd_socket, ctx.signal)) !== null) {
      ctx.progress('scanning (clamd)');
      const r = await clamdScan(s.clamd_socket, paths, ctx.signal, s.scan_timeout * 1000, max);
      if (ctx.signal.aborted) throw stopped(ctx, 'scan');
      return { scanner: 'clamd', clean: r.infected_count === 0 && r.error_count === 0 && !r.truncated, infected: r.infected, files_scanned: null, errors: r.errors, truncated: r.truncated };
    }
    ctx.progress('scanning (clamscan)');
    const r = await runTool(ctx, 'scan', s.clamscan, [`--database=${s.database_dir}`, '--infected', `--recursive=${recursive ? 'yes' : 'no'}`, '--', ...paths], {
      timeoutMs: s.scan_timeout * 1000,
      maxOutputBytes: 16 * 1024 * 1024,
    });
    // 0: nothing found, 1: something found, 2: some error; a summary tells a finished scan.
    const out = parseClamscan(r.stdout);
    if (r.code === null || r.code > 2 || out.files_scanned === null) {
      throw new TuxsecError(ErrorCodes.actionFailed, `cannot scan: clamscan exited with ${r.code ?? r.signal}: ${lastWords(r.stderr || r.stdout)}`);
    }
    const errors = [
      ...r.stderr.split('\n').filter((l) => /^(WARNING|ERROR|LibClamAV (Error|Warning)):? /.test(l)).map((l) => l.slice(0, 1000)),
      ...out.unverified.map((l) => `cannot tell which file clamscan found infected: ${JSON.stringify(l)}`),
    ];
    let infected = out.infected;
    if (out.ambiguous) {
      // A crafted name can make clamscan's text name another file: each candidate is reported
      // only once clamscan, run on that one path alone, says it is infected.
      infected = [];
      for (const [i, c] of out.infected.entries()) {
        const ok = i < MAX_CONFIRM && c.path.startsWith('/') ? await this.confirm(c.path, ctx) : null;
        if (ok) infected.push(ok);
        else errors.push(`cannot tell which file clamscan found infected: ${JSON.stringify(`${c.path}: ${c.signature}`.slice(0, 500))}`);
      }
    }
    if (out.infected_count !== null && out.infected_count !== infected.length) errors.push(`clamscan counted ${out.infected_count} infected files, ${infected.length} were identified in its output`);
    return {
      scanner: 'clamscan',
      clean: infected.length === 0 && (out.infected_count ?? 0) === 0 && out.unverified.length === 0,
      infected: infected.slice(0, max),
      files_scanned: out.files_scanned,
      errors: errors.slice(0, max),
      truncated: r.truncated || infected.length > max || errors.length > max,
    };
  }

  /**
   * The paths with symlinks resolved, all under scan_roots, or invalid-params naming the first that
   * is not (nothing is scanned). A missing path is resolved through its parent.
   */
  private within(paths: string[]): string[] {
    const real = (p: string): string => {
      try {
        return realpathSync(p);
      } catch {
        try {
          return nodePath.join(realpathSync(nodePath.dirname(p)), nodePath.basename(p));
        } catch {
          return nodePath.resolve(p);
        }
      }
    };
    const roots = this.settings.scan_roots.map(real);
    return paths.map((p) => {
      const r = real(p);
      if (!roots.some((root) => r === root || r.startsWith(root.endsWith('/') ? root : `${root}/`))) {
        throw new TuxsecError(ErrorCodes.invalidParams, `cannot scan ${JSON.stringify(p.slice(0, 200))}: it is outside scan_roots`);
      }
      return r;
    });
  }

  /** Scans one file again, alone: its output can then name only that file. */
  private async confirm(file: string, ctx: ActionContext): Promise<Infected | null> {
    const s = this.settings;
    try {
      if (!lstatSync(file).isFile()) return null;
    } catch {
      return null;
    }
    const r = await runTool(ctx, 'scan', s.clamscan, [`--database=${s.database_dir}`, '--no-summary', '--infected', '--recursive=no', '--', file], {
      timeoutMs: s.scan_timeout * 1000,
      maxOutputBytes: 64 * 1024,
    });
    const head = `${file}: `;
    if (r.code !== 1 || !r.stdout.startsWith(head) || !r.stdout.endsWith(' FOUND\n')) return null;
    const signature = r.stdout.slice(head.length, -' FOUND\n'.length);
    return signature === '' || signature.includes('\n') ? null : { path: file, signature };
  }

  private async update(ctx: ActionContext) {
    const s = this.settings;
    const what = 'update the ClamAV signatures';
    if (!executable(s.freshclam)) throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: freshclam is not installed (${s.freshclam}; apt install clamav-freshclam)`);
    ctx.progress('downloading signatures');
    const r = await runTool(ctx, what, s.freshclam, [`--config-file=${s.freshclam_config}`, `--datadir=${s.database_dir}`, '--stdout', '--foreground'], {
      timeoutMs: s.update_timeout * 1000,
      maxOutputBytes: 1024 * 1024,
    }).catch((e: unknown) => {
      if (e instanceof TuxsecError && e.code === ErrorCodes.timeout) {
        throw new TuxsecError(ErrorCodes.timeout, `cannot ${what}: cannot reach a signature mirror within ${s.update_timeout} s`);
      }
      throw e;
    });
    const text = `${r.stdout}\n${r.stderr}`;
    if (r.code !== 0) {
      const errors = text.split('\n').filter((l) => /ERROR|WARNING/.test(l));
      if (UNREACHABLE.test(text)) {
        throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: cannot reach a signature mirror: ${lastWords(errors.slice(-3).join('\n'), 300)}`);
      }
      throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: freshclam exited with ${r.code ?? r.signal}: ${lastWords(errors.join('\n') || text)}`);
    }
    return { updated: /updated \(version/.test(text), databases: readSignatures(s.database_dir) };
  }
}
