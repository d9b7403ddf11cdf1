/**
 * A throw-away copy of this machine for installer tests: an overlay of / whose writes land in a
 * temp dir, entered with chroot inside new mount and pid namespaces. install.sh, useradd and
 * dpkg run there for real without touching the host; every process started inside dies with the
 * namespace. The source tree is mounted read-only at /src and /work is hidden, so what runs in
 * there cannot reach the repository's node_modules.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run, type RunResult } from '../../src/os/exec.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');

// $1 merged, $2 upper, $3 work, $4 repo, $5 script. Runs as pid 1 of its pid namespace.
const ENTER = `set -e
M=$1 U=$2 W=$3 R=$4
mount -t overlay overlay -o "lowerdir=/,upperdir=$U,workdir=$W" "$M"
mount -t proc proc "$M/proc"
mount --bind /dev "$M/dev"
mkdir -p "$M/src"
mount --bind "$R" "$M/src"
mount -o remount,bind,ro "$M/src"
mount -t tmpfs -o size=1m tmpfs "$M/work"
exec chroot "$M" /bin/bash -c "$5"
`;

export class Overlay {
  readonly dir: string;
  readonly upper: string;
  private readonly work: string;
  private readonly merged: string;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-ovl-'));
    this.upper = path.join(this.dir, 'upper');
    this.work = path.join(this.dir, 'work');
    this.merged = path.join(this.dir, 'merged');
    for (const d of [this.upper, this.work, this.merged]) mkdirSync(d);
  }

  /** Runs a bash script as root inside the copy; `set -e` is the caller's choice. */
  sh(script: string, timeoutMs = 120_000): Promise<RunResult> {
    return run(
      '/usr/bin/unshare',
      ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '/bin/bash', '-c', ENTER, 'enter', this.merged, this.upper, this.work, REPO, script],
      { timeoutMs, env: { HOME: '/root' } },
    );
  }

  /** Like sh() but throws with the output when the script fails. */
  async must(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.sh(script, timeoutMs);
    if (r.code !== 0) throw new Error(`script failed (${r.code ?? r.signal}):\n${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    return r.stdout;
  }

  /** Every change written to the copy so far, with metadata and content hashes. */
  snapshot(): Map<string, string> {
    return snapshotTree(this.upper);
  }

  /**
   * Boots the copy with its own systemd (systemd-nspawn, private network) into a target that
   * runs `script` once as root and powers off; returns what the script printed. Units the
   * test needs must already be installed (by must()). Needs the systemd-container package.
   */
  async boot(script: string, timeoutMs = 180_000): Promise<{ output: string; console: string }> {
    writeFileSync(path.join(this.dir, 'check.sh'), script);
    await this.must(`install -m 0700 ${this.dir}/check.sh /root/tuxsec-check.sh
cat > /etc/systemd/system/tuxsec-check.service <<'U'
[Unit]
Description=installer test: runs /root/tuxsec-check.sh, then powers off
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
StandardOutput=file:/root/tuxsec-check.out
StandardError=inherit
ExecStart=/bin/bash /root/tuxsec-check.sh
U
cat > /etc/systemd/system/tuxsec-check.target <<'U'
[Unit]
Description=installer test target (sysinit, basic and the check only)
Requires=basic.target tuxsec-check.service
After=basic.target tuxsec-check.service
U
rm -f /root/tuxsec-check.out`);
    const machine = `tuxsec-test-${process.pid}`;
    const r = await run(
      '/usr/bin/unshare',
      ['--mount', '--propagation', 'private', '/bin/bash', '-c',
        `set -e
mount -t overlay overlay -o "lowerdir=/,upperdir=$2,workdir=$3" "$1"
exec /usr/bin/systemd-nspawn --register=no --keep-unit --private-network --quiet --machine="$4" -D "$1" -b -- --unit=tuxsec-check.target`,
        'boot', this.merged, this.upper, this.work, machine],
      { timeoutMs, env: { HOME: '/root' } },
    );
    // nspawn leaves an empty propagation directory behind when /run is not a tmpfs.
    try {
      rmdirSync(`/run/systemd/nspawn/propagate/${machine}`);
    } catch {
      // not there, or not empty: not ours to force
    }
    const out = path.join(this.upper, 'root/tuxsec-check.out');
    const output = existsSync(out) ? readFileSync(out, 'utf8') : '';
    return { output, console: `${r.stdout}\n${r.stderr}` };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** path -> "type mode uid:gid size mtime inode hash" for everything under root. */
export function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      let what = '';
      if (st.isFile()) what = createHash('sha256').update(readFileSync(p)).digest('hex');
      else if (st.isSymbolicLink()) what = readlinkSync(p);
      else if (st.isCharacterDevice()) what = `rdev ${st.rdev}`;
      out.set(path.relative(root, p), `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.ino} ${what}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}
