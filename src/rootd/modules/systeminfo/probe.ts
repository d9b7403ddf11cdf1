/**
 * Read-only probes of the host: /proc, /sys, /etc and Node's os module. Each returns
 * plain JSON-ready data and never throws for a missing file.
 */
import { promises as fsp } from 'node:fs';
import dns from 'node:dns';
import os from 'node:os';
import { statfsMany } from './statfs.ts';

async function readText(file: string, max = 256 * 1024): Promise<string | null> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(max);
      const { bytesRead } = await fh.read(buf, 0, max, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p.catch(() => fallback), new Promise<T>((r) => (t = setTimeout(() => r(fallback), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]!] = v.replace(/\\(["'$`\\])/g, '$1');
  }
  return out;
}

export async function distribution() {
  const text = (await readText('/etc/os-release')) ?? (await readText('/usr/lib/os-release')) ?? '';
  const r = parseOsRelease(text);
  return {
    name: r.NAME ?? 'Linux',
    version: r.VERSION_ID ?? '',
    id: r.ID ?? '',
    codename: r.VERSION_CODENAME ?? '',
    pretty_name: r.PRETTY_NAME ?? r.NAME ?? 'Linux',
  };
}

let hostCache = { at: 0, name: '' };

/** The host name, re-read at most once a second (each read is a system call). */
export function hostname(): string {
  const now = Date.now();
  if (now - hostCache.at > 1000) hostCache = { at: now, name: os.hostname() };
  return hostCache.name;
}

let fqdnCache: { at: number; host: string; fqdn: string } | null = null;

/** The fully qualified name as getfqdn() finds it (hosts file or DNS), cached for a minute. */
export async function fqdn(): Promise<string> {
  const host = hostname();
  const now = Date.now();
  if (fqdnCache && fqdnCache.host === host && now - fqdnCache.at < 60_000) return fqdnCache.fqdn;
  const name = await withTimeout(
    (async () => {
      const { address } = await dns.promises.lookup(host);
      const { hostname } = await dns.promises.lookupService(address, 0);
      return hostname.includes('.') ? hostname : host;
    })(),
    2000,
    host,
  );
  fqdnCache = { at: now, host, fqdn: name };
  return name;
}

export function osInfo() {
  return {
    system: 'Linux',
    release: os.release(),
    version: os.version(),
    machine: os.machine(),
    processor: os.machine(),
  };
}

export function uptime() {
  const s = Math.floor(os.uptime());
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return {
    uptime_seconds: s,
    uptime_days: d,
    uptime_hours: h,
    uptime_minutes: m,
    uptime_formatted: `${d}d ${h}h ${m}m`,
  };
}

export async function bootTime() {
  const stat = (await readText('/proc/stat')) ?? '';
  const m = /^btime (\d+)$/m.exec(stat);
  const epoch = m ? Number(m[1]) : Math.floor(Date.now() / 1000 - os.uptime());
  return { boot_time: new Date(epoch * 1000).toISOString(), boot_time_epoch: epoch };
}

export async function machineId() {
  const id = ((await readText('/etc/machine-id')) ?? (await readText('/var/lib/dbus/machine-id')) ?? '').trim();
  return { machine_id: /^[0-9a-f]{32}$/.test(id) ? id : null };
}

export function cpus() {
  const list = os.cpus();
  const model = list[0]?.model ?? 'unknown';
  return {
    count: list.length,
    model,
    speed_mhz: list[0]?.speed ?? 0,
    architecture: os.arch(),
    available_parallelism: os.availableParallelism(),
  };
}

export async function memory() {
  const text = (await readText('/proc/meminfo')) ?? '';
  const kb = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb('MemTotal') ?? os.totalmem();
  const available = kb('MemAvailable') ?? os.freemem();
  const swapTotal = kb('SwapTotal') ?? 0;
  const swapFree = kb('SwapFree') ?? 0;
  return {
    total_bytes: total,
    available_bytes: available,
    used_bytes: total - available,
    percent_used: total ? Math.round(((total - available) / total) * 1000) / 10 : 0,
    swap_total_bytes: swapTotal,
    swap_free_bytes: swapFree,
  };
}

export function loadAverage() {
  const [one, five, fifteen] = os.loadavg();
  return { load_1: one, load_5: five, load_15: fifteen, cpu_count: os.cpus().length };
}

const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs', 'mqueue',
  'hugetlbfs', 'pstore', 'bpf', 'configfs', 'fusectl', 'autofs', 'binfmt_misc', 'rpc_pipefs', 'nsfs', 'efivarfs', 'ramfs',
]);

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Network filesystems: their usage is not asked for unless the caller wants it, since a
 * dead server makes every statfs wait (see statfs.ts for what that wait costs).
 */
export const NETWORK_FS = new Set([
  'nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'ncpfs', 'afs', 'ceph', 'glusterfs', 'lustre', 'gfs2', 'ocfs2', 'beegfs',
  'orangefs', 'davfs', '9p', 'fuse.sshfs', 'fuse.glusterfs', 'fuse.ceph-fuse', 'fuse.s3fs', 'fuse.rclone',
  'fuse.davfs2', 'fuse.gcsfuse', 'fuse.juicefs', 'fuse.cephfs',
]);

export interface FilesystemOptions {
  /** Ask network filesystems for their usage too (default false). */
  includeNetwork?: boolean;
}

/**
 * Mounted filesystems with their usage. `status` says whether the usage was read
 * ("ok"), the filesystem did not answer ("timeout"), the call failed ("error"), or it is
 * a network filesystem not asked ("skipped"); the usage fields are null unless "ok".
 */
export async function filesystems(opts: FilesystemOptions = {}) {
  const text = (await readText('/proc/self/mounts', 1024 * 1024)) ?? '';
  const seen = new Set<string>();
  const rows = text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 4 && !PSEUDO_FS.has(f[2]!))
    .map((f) => ({ device: unescapeMount(f[0]!), mountpoint: unescapeMount(f[1]!), fstype: f[2]!, options: f[3]!.split(',') }))
    .filter((r) => (seen.has(r.mountpoint) ? false : (seen.add(r.mountpoint), true)))
    .slice(0, 256);
  const asked = rows.filter((r) => opts.includeNetwork || !NETWORK_FS.has(r.fstype)).map((r) => r.mountpoint);
  const usage = await statfsMany(asked);
  return rows.map((r) => {
    const base = { device: r.device, mountpoint: r.mountpoint, fstype: r.fstype, read_only: r.options.includes('ro') };
    const st = usage.get(r.mountpoint);
    if (st?.status !== 'ok') {
      return {
        ...base,
        status: st?.status ?? 'skipped',
        ...(st ? { error: st.error } : {}),
        total_bytes: null,
        used_bytes: null,
        free_bytes: null,
        percent_used: null,
        inodes_total: null,
        inodes_free: null,
      };
    }
    const total = st.blocks * st.bsize;
    const free = st.bavail * st.bsize;
    const used = (st.blocks - st.bfree) * st.bsize;
    return {
      ...base,
      status: 'ok',
      total_bytes: total,
      used_bytes: used,
      free_bytes: free,
      percent_used: used + free ? Math.round((used / (used + free)) * 1000) / 10 : 0,
      inodes_total: st.files,
      inodes_free: st.ffree,
    };
  });
}

export async function networkInterfaces() {
  const ifs = os.networkInterfaces();
  return Promise.all(
    Object.entries(ifs).map(async ([name, addrs]) => {
      const sys = `/sys/class/net/${name}`;
      const [operstate, mtu, mac] = await Promise.all([
        readText(`${sys}/operstate`, 64),
        readText(`${sys}/mtu`, 64),
        readText(`${sys}/address`, 64),
      ]);
      return {
        name,
        state: operstate?.trim() ?? 'unknown',
        mtu: mtu ? Number(mtu.trim()) : null,
        mac: mac?.trim() ?? addrs?.[0]?.mac ?? null,
        addresses: (addrs ?? []).map((a) => ({ family: a.family === 'IPv4' ? 'inet' : 'inet6', address: a.address, cidr: a.cidr, internal: a.internal })),
      };
    }),
  );
}
