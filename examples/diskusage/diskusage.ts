/**
 * diskusage: an example third-party rootd plugin. `get_usage` answers how full the filesystem
 * holding a path is; `scan` walks a directory tree like `du -x` and lists its largest files. A scan
 * of a big tree runs for minutes, so it is long-running: it reports progress and stops when
 * cancelled. It runs no program (everything is a file system call), so it needs no `run()`.
 *
 * Built into one ES module by build.mjs; see README.md.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, opendir, statfs, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ActionModule, ErrorCodes, Params, TuxsecError, Type, defineAction, validateParams } from 'tuxsec-agent/sdk';
import type { ActionContext, InitResult, ModuleContext, Static } from 'tuxsec-agent/sdk';

const AbsolutePath = Type.String({ minLength: 1, maxLength: 4096, pattern: '^/[^\\u0000]*$', description: 'an absolute path' });

const Settings = Params({
  // A scan of a busy server's disks should not starve its own work of I/O.
  files_per_second: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'entries a scan reads per second at most (0: no limit)' })),
});

const ScanParams = Params({
  path: AbsolutePath,
  top: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'how many of the largest files to list (default 10)' })),
});

/** Error messages listed in a scan result at most; `errors` keeps the full count. */
const MAX_ERROR_MESSAGES = 20;

interface Largest {
  path: string;
  bytes: number;
}

interface ScanResult {
  path: string;
  files: number;
  directories: number;
  /** Space the files take on disk (512-byte blocks), as du counts it. */
  bytes: number;
  /** Sum of the file sizes. */
  apparent_bytes: number;
  largest: Largest[];
  /** Directories on another filesystem, not entered (du -x). */
  other_filesystems: number;
  errors: number;
  error_messages: string[];
}

const quoted = (p: string) => JSON.stringify(p.length > 200 ? `${p.slice(0, 200)}…` : p);

/** Why a file system call failed, as "cannot <what>: <why>" with a stable code. */
function fsError(e: unknown, what: string): TuxsecError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new TuxsecError(ErrorCodes.notFound, `cannot ${what}: no such file or directory`);
  if (code === 'ELOOP') return new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: it is a symbolic link now`);
  if (code === 'EACCES' || code === 'EPERM') return new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: permission denied`);
  return new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: ${(e as Error).message}`);
}

async function usage(p: string) {
  let s;
  try {
    s = await statfs(p);
  } catch (e) {
    throw fsError(e, `read the space of the filesystem holding ${quoted(p)}`);
  }
  const total = s.blocks * s.bsize;
  const free = s.bfree * s.bsize;
  const available = s.bavail * s.bsize;
  const used = total - free;
  return {
    path: p,
    total_bytes: total,
    used_bytes: used,
    available_bytes: available,
    // As df counts it: of the space ordinary users could have (used + available).
    used_percent: used + available === 0 ? 0 : Math.ceil((used / (used + available)) * 1000) / 10,
    inodes_total: s.files,
    inodes_free: s.ffree,
  };
}

/** Paces a scan at `perSecond` entries; waits stop when the scan is cancelled. */
function pacer(perSecond: number, signal: AbortSignal): () => Promise<void> {
  if (perSecond === 0) return async () => {};
  const t0 = Date.now();
  let n = 0;
  return async () => {
    n++;
    const ahead = t0 + (n * 1000) / perSecond - Date.now();
    if (ahead <= 0) return;
    signal.throwIfAborted();
    // The listener goes with its wait: a scan waits once per entry, for hours.
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(t);
        reject(signal.reason);
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ahead);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}

/** Deepest directory entered; deeper ones are counted as errors (each level holds a descriptor open). */
const MAX_DEPTH = 512;

/** A path through an open directory: the kernel resolves it from the descriptor, never from its name. */
const viaFd = (fd: number, name?: string) => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

/**
 * Opens a directory without following a symbolic link, and checks it is the one `expected`
 * describes (an lstat of it): a directory swapped between that lstat and this open is refused.
 */
async function openDir(p: string, expected: { dev: number; ino: number }, shown: string): Promise<FileHandle> {
  const fh = await open(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const s = await fh.stat();
    if (s.dev !== expected.dev || s.ino !== expected.ino) throw Object.assign(new Error(`${shown} was replaced while it was read`), { code: 'ECHANGED' });
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function scan(root: string, top: number, perSecond: number, ctx: ActionContext): Promise<ScanResult> {
  let st;
  try {
    st = await lstat(root);
  } catch (e) {
    throw fsError(e, `scan ${quoted(root)}`);
  }
  if (!st.isDirectory()) throw new TuxsecError(ErrorCodes.invalidParams, `cannot scan ${quoted(root)}: not a directory`);
  const r: ScanResult = { path: root, files: 0, directories: 1, bytes: st.blocks * 512, apparent_bytes: 0, largest: [], other_filesystems: 0, errors: 0, error_messages: [] };
  const failed = (e: unknown, p: string) => {
    r.errors++;
    if (r.error_messages.length < MAX_ERROR_MESSAGES) r.error_messages.push(fsError(e, `read ${quoted(p)}`).message);
  };
  const pace = pacer(perSecond, ctx.signal);

  /**
   * Counts one entry of the directory open as `dirFd`, looked up by its name in that directory
   * (so a parent swapped for a link since is never followed); gives its lstat for a directory
   * to enter.
   */
  const visit = async (dirFd: number, name: string, p: string): Promise<Stats | null> => {
    ctx.signal.throwIfAborted();
    await pace();
    let s;
    try {
      s = await lstat(viaFd(dirFd, name));
    } catch (e) {
      failed(e, p);
      return null;
    }
    if (s.isDirectory()) {
      if (s.dev !== st.dev) {
        r.other_filesystems++;
        return null;
      }
      r.directories++;
      r.bytes += s.blocks * 512;
      return s;
    }
    r.files++;
    r.bytes += s.blocks * 512;
    r.apparent_bytes += s.size;
    // A short sorted list: inserting into it costs less than keeping every file.
    if (top > 0 && (r.largest.length < top || s.size > r.largest[r.largest.length - 1]!.bytes)) {
      const at = r.largest.findIndex((l) => l.bytes < s.size);
      r.largest.splice(at === -1 ? r.largest.length : at, 0, { path: p, bytes: s.size });
      if (r.largest.length > top) r.largest.pop();
    }
    return null;
  };
  const names = async (fd: number, dir: string): Promise<string[]> => {
    const out: string[] = [];
    try {
      for await (const e of await opendir(viaFd(fd))) out.push(e.name);
    } catch (e) {
      failed(e, dir);
    }
    return out.sort();
  };
  /** Walks the directory `fh` (at `dir`, `depth` levels below root), depth first in name order. */
  const walk = async (fh: FileHandle, dir: string, depth: number, onEntry?: (i: number, n: number) => void): Promise<void> => {
    const list = await names(fh.fd, dir);
    for (const [i, name] of list.entries()) {
      onEntry?.(i, list.length);
      const p = path.join(dir, name);
      const s = await visit(fh.fd, name, p);
      if (!s) continue;
      if (depth + 1 >= MAX_DEPTH) {
        failed(Object.assign(new Error(`deeper than ${MAX_DEPTH} directories`), { code: 'EDEEP' }), p);
        continue;
      }
      let child: FileHandle;
      try {
        child = await openDir(viaFd(fh.fd, name), s, quoted(p));
      } catch (e) {
        failed(e, p);
        continue;
      }
      try {
        await walk(child, p, depth + 1);
      } finally {
        await child.close();
      }
    }
  };

  let rootFh: FileHandle;
  try {
    rootFh = await openDir(root, st, quoted(root));
  } catch (e) {
    throw fsError(e, `scan ${quoted(root)}`);
  }
  // The fraction counts the top-level entries done: the only total known without a second walk.
  ctx.progress('listing', 0);
  try {
    await walk(rootFh, root, 0, (i, n) => ctx.progress(`scanning ${r.files} files`, i / n));
  } finally {
    await rootFh.close();
  }
  ctx.progress(`scanned ${r.files} files`, 1);
  return r;
}

/** The example plugin: rootd loads the default export of a file in plugins_dir. */
export default class DiskUsageModule extends ActionModule {
  private filesPerSecond = 0;

  get name() {
    return 'diskusage';
  }
  get version() {
    return '1.0.0';
  }
  get description() {
    return 'Filesystem space, and the largest files of a directory tree (example plugin)';
  }

  override async initialize(ctx?: ModuleContext): Promise<InitResult> {
    const settings = ctx?.settings ?? {};
    try {
      validateParams(Settings, settings, 'rootd.yaml modules.diskusage.settings');
    } catch (e) {
      // The module stays unavailable, listed with this reason; rootd runs on.
      return [false, (e as Error).message];
    }
    this.filesPerSecond = (settings as Static<typeof Settings>).files_per_second ?? 0;
    return [true, null];
  }

  protected defineActions() {
    return [
      defineAction({
        name: 'get_usage',
        description: 'Size, used and available space and inodes of the filesystem holding a path',
        access: 'read',
        params: Params({ path: AbsolutePath }),
        handler: ({ path: p }) => usage(p),
      }),
      defineAction({
        name: 'scan',
        description: 'Walk a directory tree on one filesystem (like du -x): files, directories, bytes and the largest files',
        access: 'read',
        longRunning: { timeoutSeconds: 3600 },
        params: ScanParams,
        handler: (p, ctx) => scan(p.path, p.top ?? 10, this.filesPerSecond, ctx),
      }),
    ];
  }
}
