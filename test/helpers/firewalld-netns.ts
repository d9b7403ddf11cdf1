/**
 * A real firewalld for tests, inside a network namespace the helper creates, with a temp copy
 * of /etc/firewalld bind-mounted over /etc/firewalld in a private mount namespace (so permanent
 * changes never reach the machine's /etc and the host's firewall is never touched). Starts the
 * system D-Bus first when nothing answers on its socket. Stops only what it started, by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, type RunResult } from '../../src/os/exec.ts';
import { DbusConnection } from '../../src/os/dbus.ts';

const BUS_SOCKET = '/run/dbus/system_bus_socket';
const LAUNCHER = path.join(import.meta.dirname, 'firewalld-launch.sh');
const FW_NAME = 'org.fedoraproject.FirewallD1';

export interface FirewalldNetns {
  ns: string;
  /** The temp directory mounted over /etc/firewalld for firewalld only. */
  etcDir: string;
  /** pid of the running firewalld (changes after restart()). */
  pid(): number;
  /** True when this helper started the system bus. */
  startedBus: boolean;
  /** Runs firewall-cmd inside the namespace. */
  cmd(args: string[]): Promise<RunResult>;
  /** Stops firewalld (by pid) and waits until its bus name is gone. */
  stopFirewalld(): Promise<void>;
  /** Starts firewalld again (same namespace and config) and waits for it. */
  startFirewalld(): Promise<void>;
  /** Stops firewalld, deletes the namespace and the temp config; stops the bus if it started it. */
  stop(): Promise<void>;
}

function socketAnswers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

/**
 * True when `pid` is a running dbus-daemon. A bus stopped by SIGTERM may linger as a zombie
 * (its parent here does not reap it) and the pid may be reused: neither counts.
 */
function busAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dbus-daemon';
  } catch {
    return false;
  }
}

/** Starts the system bus when its socket does not answer; returns true when it started it. */
export async function ensureSystemBus(): Promise<boolean> {
  if (await socketAnswers(BUS_SOCKET)) return false;
  mkdirSync('/run/dbus', { recursive: true });
  const pidFile = '/run/dbus/pid';
  if (existsSync(pidFile)) {
    const old = Number(readFileSync(pidFile, 'utf8').trim());
    // A pid file of a dead bus would make dbus-daemon refuse to start.
    if (!Number.isInteger(old) || !busAlive(old)) rmSync(pidFile, { force: true });
  }
  const r = await run('/usr/bin/dbus-daemon', ['--system', '--fork'], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`cannot start the system bus: ${r.stderr}`);
  for (let i = 0; i < 100 && !(await socketAnswers(BUS_SOCKET)); i++) await new Promise((res) => setTimeout(res, 50));
  return true;
}

/** Stops a system bus this process started (pid from its pid file). */
export function stopSystemBus(): void {
  const pidFile = '/run/dbus/pid';
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (Number.isInteger(pid) && pid > 1 && busAlive(pid)) process.kill(pid, 'SIGTERM');
  // dbus-daemon leaves its pid file behind; the next start would refuse to run.
  rmSync(pidFile, { force: true });
}

async function nameOwner(bus: DbusConnection): Promise<string | null> {
  try {
    const [o] = await bus.call(
      { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: [FW_NAME] },
      { timeoutMs: 2000 },
    );
    return String(o);
  } catch {
    return null;
  }
}

async function fwState(bus: DbusConnection): Promise<string | null> {
  try {
    const [v] = await bus.call(
      { destination: FW_NAME, path: '/org/fedoraproject/FirewallD1', interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [FW_NAME, 'state'] },
      { timeoutMs: 2000 },
    );
    return String((v as { value: unknown }).value);
  } catch {
    return null;
  }
}

export async function startFirewalldNetns(): Promise<FirewalldNetns> {
  const startedBus = await ensureSystemBus();
  const bus = new DbusConnection();
  if (await nameOwner(bus)) {
    bus.close();
    throw new Error(`${FW_NAME} is already owned on the system bus: another firewalld runs; refusing to touch it`);
  }
  const ns = `tuxsec-fw-${randomBytes(4).toString('hex')}`;
  const add = await run('/usr/sbin/ip', ['netns', 'add', ns]);
  if (add.code !== 0) throw new Error(`cannot create network namespace ${ns}: ${add.stderr}`);
  await run('/usr/sbin/ip', ['netns', 'exec', ns, '/usr/sbin/ip', 'link', 'set', 'lo', 'up']);
  const etcDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwetc-'));
  cpSync('/etc/firewalld', etcDir, { recursive: true });
  let proc: ChildProcess | null = null;
  let log = '';

  const startFirewalld = async (): Promise<void> => {
    log = '';
    // A fixed argument array; the only values are our temp dir and namespace name.
    proc = spawn('/usr/bin/unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', LAUNCHER, etcDir, ns], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
    });
    proc.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`firewalld exited with ${proc.exitCode}: ${log}`);
      if ((await nameOwner(bus)) && (await fwState(bus)) === 'RUNNING') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`firewalld did not come up within 30 s: ${log}`);
  };

  const stopFirewalld = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    // unshare, sh and ip exec into firewalld, so this pid is firewalld's.
    process.kill(p.pid!, 'SIGTERM');
    const t = setTimeout(() => p.exitCode === null && p.signalCode === null && process.kill(p.pid!, 'SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
    for (let i = 0; i < 100 && (await nameOwner(bus)); i++) await new Promise((r) => setTimeout(r, 50));
  };

  try {
    await startFirewalld();
  } catch (e) {
    await stopFirewalld().catch(() => undefined);
    await run('/usr/sbin/ip', ['netns', 'delete', ns]);
    rmSync(etcDir, { recursive: true, force: true });
    bus.close();
    throw e;
  }

  return {
    ns,
    etcDir,
    startedBus,
    pid: () => proc?.pid ?? -1,
    cmd: (args) => run('/usr/sbin/ip', ['netns', 'exec', ns, '/usr/bin/firewall-cmd', ...args], { timeoutMs: 30_000 }),
    stopFirewalld,
    startFirewalld,
    async stop() {
      await stopFirewalld();
      await run('/usr/sbin/ip', ['netns', 'delete', ns]);
      rmSync(etcDir, { recursive: true, force: true });
      bus.close();
      if (startedBus) stopSystemBus();
    },
  };
}
