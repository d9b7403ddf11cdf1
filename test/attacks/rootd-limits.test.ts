/**
 * Attacks on what one local user can cost rootd: audit volume, memory, connections, rate.
 * The attacker is a real user (tuxsec-test-member, in the socket group) running its own
 * process; rootd is the real daemon, started as root.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { startRootd, CLI_JS, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writePlugin } from '../helpers/plugin.ts';
import { connectRaw, oneShot, rssKiB } from '../helpers/raw.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import type { UserEntry } from '../../src/os/users.ts';

type Users = Awaited<ReturnType<typeof ensureTestUsers>>;

interface Outcome {
  type: string;
  code?: string;
  error?: string;
}

/**
 * Runs a Node script as a real user. The script gets the socket path as SOCK and prints one
 * JSON line of results; it keeps running (holding what it opened) until its stdin closes.
 */
function scriptAs(user: UserEntry, socketPath: string, body: string): { proc: ChildProcess; result: Promise<unknown> } {
  const code = `const net = require('net'); const SOCK = ${JSON.stringify(socketPath)};
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
${body}`;
  const [file, argv] = asUser(user, process.execPath, ['-e', code]);
  const proc = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const result = new Promise<unknown>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const i = out.indexOf('\n');
      if (i >= 0) resolve(JSON.parse(out.slice(0, i)));
    });
    proc.once('exit', (c) => reject(new Error(`script as ${user.name} exited with ${c}: ${err.slice(-2000)}`)));
  });
  return { proc, result };
}

function endScript(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.exitCode === null && process.kill(proc.pid!, 'SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.stdin!.end();
  });
}

/** Script body: sends `lines` one at a time on one connection and prints each answer's code and error. */
function sequentialBody(makeLine: string, count: number): string {
  return `const s = net.createConnection(SOCK);
let buf = ''; const res = []; let sent = 0;
const send = () => { sent++; s.write(${makeLine} + '\\n'); };
s.on('connect', send);
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const r = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
    res.push({ type: r.type, code: r.data.code, error: r.data.error });
    if (res.length === ${count}) { console.log(JSON.stringify(res)); s.destroy(); } else send();
  }
});
s.on('close', () => { if (res.length < ${count}) { console.log(JSON.stringify(res)); } });`;
}

function auditSize(d: RootdHandle): number {
  return existsSync(d.auditPath) ? statSync(d.auditPath).size : 0;
}

function auditLines(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pings as root through a fresh connection (the test runs as root). */
async function rootPing(d: RootdHandle): Promise<Record<string, unknown>> {
  return oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: 'root-ping', data: {} }));
}

function cliAs(user: UserEntry, socketPath: string, ...args: string[]) {
  const [file, argv] = asUser(user, process.execPath, [CLI_JS, '--socket', socketPath, ...args]);
  return spawnSync(file, argv, { encoding: 'utf8', timeout: 30_000 });
}

describe('attack: audit and memory flood by a read-only user', () => {
  let users: Users;
  before(async () => {
    users = await ensureTestUsers();
  });

  const floods: Array<[string, string, string, RegExp]> = [
    [
      'a 1,000,000-character module name',
      `JSON.stringify({ type: 'execute_command', request_id: 'm' + sent, data: { module: 'a'.repeat(1000000), action: 'get_hostname' } })`,
      'invalid-request',
      /^cannot run request: invalid module name "a{20,}…\(1000002 chars\): a lowercase letter/,
    ],
    [
      'a 1,000,000-character action name',
      `JSON.stringify({ type: 'execute_command', request_id: 'a' + sent, data: { module: 'systeminfo', action: 'b'.repeat(1000000) } })`,
      'invalid-request',
      /^cannot run request: invalid action name "b{20,}…\(1000002 chars\): a letter/,
    ],
    [
      'a 1,000,000-character module name in module_info',
      `JSON.stringify({ type: 'module_info', request_id: 'i' + sent, data: { module: 'c'.repeat(1000000) } })`,
      'invalid-request',
      /^cannot run request: invalid module name "c{20,}…/,
    ],
  ];
  for (const [what, makeLine, code, message] of floods) {
    it(`50 requests with ${what} are refused as invalid-request and add little to the audit log and rootd's memory`, async () => {
      const d = await startRootd({ config: { read_only_users: [users.member.name] } });
      try {
        const before = auditSize(d);
        const rssBefore = await rssKiB(d.proc.pid!);
        const { proc, result } = scriptAs(users.member, d.socketPath, sequentialBody(makeLine, 50));
        const res = (await result) as Outcome[];
        await endScript(proc);
        assert.equal(res.length, 50);
        for (const r of res) {
          assert.equal(r.code, code, JSON.stringify(r).slice(0, 300));
          assert.match(r.error!, message);
          assert.ok(r.error!.length < 300, `error of ${r.error!.length} characters`);
        }
        // Every refusal is audited, each in a short record.
        await until('50 audit records', () => auditLines(d.auditPath).filter((l) => l.uid === users.member.uid).length >= 50);
        const grown = auditSize(d) - before;
        assert.ok(grown < 200 * 1024, `audit log grew by ${grown} bytes`);
        // Each 1 MB line is parsed, so some garbage is expected; what must not happen is memory
        // that grows with the number of such requests (audit records held for the disk).
        const rssAfter = await rssKiB(d.proc.pid!);
        assert.ok(rssAfter < 200 * 1024, `rootd RSS grew from ${rssBefore} to ${rssAfter} KiB`);
      } finally {
        await d.stop();
      }
    });
  }

  it('50 requests with 60,000 parameters each are refused as invalid-params and audited cut short', async () => {
    const d = await startRootd({ config: { read_only_users: [users.member.name] } });
    try {
      const before = auditSize(d);
      const makeLine = `(() => { const p = {}; for (let k = 0; k < 60000; k++) p['k' + k] = k; return JSON.stringify({ type: 'execute_command', request_id: 'p' + sent, data: { module: 'systeminfo', action: 'get_hostname', parameters: p } }); })()`;
      const { proc, result } = scriptAs(users.member, d.socketPath, sequentialBody(makeLine, 50));
      const res = (await result) as Outcome[];
      await endScript(proc);
      assert.equal(res.length, 50);
      for (const r of res) {
        assert.equal(r.code, 'invalid-params');
        assert.match(r.error!, /^systeminfo get_hostname: unknown parameter "k0"/);
      }
      await until('50 audit records', () => auditLines(d.auditPath).filter((l) => l.uid === users.member.uid).length >= 50);
      const grown = auditSize(d) - before;
      // About 4 KiB of parameters per record, 50 records: under 300 KiB (it was 50 MB).
      assert.ok(grown < 300 * 1024, `audit log grew by ${grown} bytes`);
      const rec = auditLines(d.auditPath).find((l) => l.uid === users.member.uid)!;
      const params = rec.parameters as Record<string, unknown>;
      assert.ok(Object.keys(params).length <= 65, `${Object.keys(params).length} keys audited`);
      assert.match(String(params['…']), /^\d+ more keys$/);
    } finally {
      await d.stop();
    }
  });
});

describe('attack: refused requests and connections against the rate limit', () => {
  let users: Users;
  before(async () => {
    users = await ensureTestUsers();
  });

  it('a read-only user sending 200 refused requests (unknown type, bad JSON, unknown module) is rate-limited after the burst, and the audit log holds a bounded number of records', async () => {
    const d = await startRootd({ config: { read_only_users: [users.member.name], rate_limit: { requests_per_second: 1, burst: 10 } } });
    try {
      const body = `const s = net.createConnection(SOCK);
const lines = [];
for (let i = 0; i < 200; i++) {
  lines.push(i % 3 === 0 ? JSON.stringify({ type: 'no_such_type', request_id: 'u' + i, data: {} })
    : i % 3 === 1 ? '{"type": not json'
    : JSON.stringify({ type: 'execute_command', request_id: 'n' + i, data: { module: 'nosuchmodule', action: 'x' } }));
}
let buf = ''; const res = [];
s.on('connect', () => s.write(lines.join('\\n') + '\\n'));
s.on('data', (d) => {
  buf += d; let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const r = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
    res.push(r.data.code);
    if (res.length === 200) { console.log(JSON.stringify(res)); s.destroy(); }
  }
});`;
      const { proc, result } = scriptAs(users.member, d.socketPath, body);
      const codes = (await result) as string[];
      await endScript(proc);
      const limited = codes.filter((c) => c === 'rate-limited').length;
      assert.ok(limited >= 185, `${limited} of 200 refused requests rate-limited: ${codes.slice(0, 20).join(' ')}`);
      // Refusals past the limit are one record for the run, not one each.
      await new Promise((r) => setTimeout(r, 500));
      const mine = auditLines(d.auditPath).filter((l) => l.uid === users.member.uid);
      assert.ok(mine.length <= 15, `${mine.length} audit records for 200 refused requests`);
      // Once the bucket refills, the run is summed up in one record.
      await new Promise((r) => setTimeout(r, 1100));
      const r2 = cliAs(users.member, d.socketPath, 'ping');
      assert.equal(r2.status, 0, r2.stderr);
      await until('the rate-limited summary record', () =>
        auditLines(d.auditPath).some((l) => l.uid === users.member.uid && l.type === 'rate-limited' && typeof l.count === 'number' && (l.count as number) >= 185),
      );
    } finally {
      await d.stop();
    }
  });

  it('a group member who may not use rootd connecting 100 times gets at most the burst of audit records', async () => {
    // A token every 10 s: the 100 connections, one after the other, take about a second on a
    // loaded machine, and every token refilled meanwhile is one more record (1/s allowed 7 for 1 s).
    const d = await startRootd({ config: { read_only_users: [], rate_limit: { requests_per_second: 0.1, burst: 5 } } });
    try {
      const body = `let done = 0, denied = 0;
const one = () => { const s = net.createConnection(SOCK); let b = '';
  s.on('data', (d) => { b += d; });
  s.on('error', () => {});
  s.on('close', () => { if (/permission denied|too many|rate/.test(b)) denied++; if (++done === 100) console.log(JSON.stringify({ denied })); else one(); }); };
one();`;
      const { proc, result } = scriptAs(users.member, d.socketPath, body);
      const r = (await result) as { denied: number };
      await endScript(proc);
      assert.equal(r.denied, 100, 'every connection refused with an error line');
      await new Promise((res) => setTimeout(res, 500));
      const mine = auditLines(d.auditPath).filter((l) => l.uid === users.member.uid);
      assert.ok(mine.length >= 1 && mine.length <= 7, `${mine.length} audit records for 100 refused connections`);
    } finally {
      await d.stop();
    }
  });
});

describe('attack: a connection flood by a group member who may not use rootd', () => {
  it('a member connecting in a loop and keeping every socket open holds few descriptors and audit records, and root is still served', async () => {
    const users = await ensureTestUsers();
    const d = await startRootd({ config: { read_only_users: [] } });
    try {
      // 3 s of connections as fast as one process can make them, every one kept open.
      const body = `const held = []; let made = 0; const end = Date.now() + 3000;
const one = () => { if (Date.now() > end) { console.log(JSON.stringify({ made })); return; }
  const s = net.createConnection(SOCK); s.on('error', () => {}); held.push(s); made++;
  s.once('connect', one); s.once('error', () => setTimeout(one, 1)); };
for (let i = 0; i < 16; i++) one();`;
      const { proc, result } = scriptAs(users.member, d.socketPath, body);
      let maxFds = 0;
      let rootOk = 0;
      let rootTries = 0;
      const watch = (async () => {
        for (let i = 0; i < 25; i++) {
          maxFds = Math.max(maxFds, (await import('node:fs')).readdirSync(`/proc/${d.proc.pid}/fd`).length);
          rootTries++;
          try {
            const r = await oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: `root${i}`, data: {} }));
            if ((r.data as { pong?: boolean }).pong === true) rootOk++;
          } catch {
            // counted as a failure below
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const r = (await result) as { made: number };
      await watch;
      await endScript(proc);
      assert.ok(r.made > 500, `the member made only ${r.made} connections`);
      assert.equal(rootOk, rootTries, `root was served ${rootOk} of ${rootTries} times during the flood`);
      assert.ok(maxFds < 400, `rootd held ${maxFds} descriptors during the flood`);
      await new Promise((res) => setTimeout(res, 500));
      const mine = auditLines(d.auditPath).filter((l) => l.uid === users.member.uid);
      assert.ok(mine.length <= 60, `${mine.length} audit records for ${r.made} refused connections`);
    } finally {
      await d.stop();
    }
  });
});

describe('attack: connection hogging by a read-only user', () => {
  let users: Users;
  before(async () => {
    users = await ensureTestUsers();
  });

  /** Script body: opens n connections, pings on each, reports pongs and refusals, holds the rest. */
  const hog = (n: number) => `const held = []; const refused = []; let done = 0;
const one = () => { const s = net.createConnection(SOCK); let b = '';
  s.on('error', () => {});
  let counted = false;
  const fin = () => { if (counted) return; counted = true; if (++done === ${n}) console.log(JSON.stringify({ held: held.length, refused })); else one(); };
  s.on('close', () => { if (!counted) { refused.push('closed without an answer: ' + b); fin(); } });
  s.on('connect', () => s.write(JSON.stringify({ type: 'ping', request_id: 'h', data: {} }) + '\\n'));
  s.on('data', (d) => { b += d; if (!b.includes('\\n')) return; const r = JSON.parse(b.split('\\n')[0]);
    if (r.type === 'success') { held.push(s); fin(); } else { refused.push(r.data.error); fin(); } });
};
one();`;

  it('130 idle connections from a read-only user: the 33rd is refused by max_connections_per_uid, root and the allowed user still get in', async () => {
    const d = await startRootd({ config: { read_only_users: [users.member.name], allowed_users: [users.tuxsec.name] } });
    const { proc, result } = scriptAs(users.member, d.socketPath, hog(130));
    try {
      const r = (await result) as { held: number; refused: string[] };
      assert.equal(r.held, 32, `held ${r.held}`);
      assert.equal(r.refused.length, 98);
      assert.match(r.refused[0]!, /^too many connections from uid \d+ \(max_connections_per_uid 32\)/);
      const ping = await rootPing(d);
      assert.equal(ping.type, 'success', JSON.stringify(ping));
      const c = cliAs(users.tuxsec, d.socketPath, 'execute', 'systeminfo', 'get_hostname');
      assert.equal(c.status, 0, c.stderr);
    } finally {
      await endScript(proc);
      await d.stop();
    }
  });

  it('read-only users cannot take the connections reserved for root and allowed_users', async () => {
    const d = await startRootd({
      config: { read_only_users: [users.member.name], allowed_users: [users.tuxsec.name], max_connections: 20, reserved_connections: 4 },
    });
    const { proc, result } = scriptAs(users.member, d.socketPath, hog(30));
    try {
      const r = (await result) as { held: number; refused: string[] };
      assert.equal(r.held, 16, `held ${r.held}`);
      assert.match(r.refused[0]!, /^too many connections: the last 4 of max_connections 20 are reserved for root and allowed_users/);
      const ping = await rootPing(d);
      assert.equal(ping.type, 'success', JSON.stringify(ping));
      const c = cliAs(users.tuxsec, d.socketPath, 'ping');
      assert.equal(c.status, 0, c.stderr);
    } finally {
      await endScript(proc);
      await d.stop();
    }
  });

  it('an idle connection is closed after idle_timeout, one waiting on a long action is not', async () => {
    const plugins = pluginDir();
    writePlugin(plugins, {
      name: 'slowmod',
      description: 'an action that takes its time',
      actions: `[defineAction({ name: 'sleep', description: 'sleep', access: 'read', params: Params({ ms: Type.Integer({ minimum: 0, maximum: 60000 }) }),
      handler: (p) => new Promise((res) => setTimeout(() => res({ slept: p.ms }), p.ms)) })]`,
    });
    const d = await startRootd({ config: { idle_timeout: 1, plugins_dir: plugins, modules: { slowmod: { enabled: true }, firewalld: { enabled: false } } } });
    try {
      const idle = await connectRaw(d.socketPath);
      const busy = await connectRaw(d.socketPath);
      const t0 = Date.now();
      busy.write(JSON.stringify({ type: 'execute_command', request_id: 'slow', data: { module: 'slowmod', action: 'sleep', parameters: { ms: 3500 } } }) + '\n');
      await Promise.race([idle.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('idle connection still open after 15 s')), 15_000))]);
      assert.ok(Date.now() - t0 >= 900, 'closed before idle_timeout');
      const [res] = await busy.next(1, 15_000);
      assert.equal(res!.type, 'success', JSON.stringify(res));
      assert.deepEqual((res!.data as { data: unknown }).data, { slept: 3500 });
      // Idle again after its answer: closed in its turn.
      await Promise.race([busy.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('answered connection never closed')), 15_000))]);
    } finally {
      await d.stop();
      rmSync(plugins, { recursive: true, force: true });
    }
  });
});

describe('attack: a slow or failing audit disk', () => {
  it('with the audit log on a frozen filesystem, rootd keeps answering, holds at most 4 MiB of records, and writes how many records it dropped once the disk is back', async () => {
    // A real ext4 on a loop device, frozen with fsfreeze: every write to it blocks until thawed,
    // which is what a hung or very slow disk does to rootd's audit writer.
    const work = mkdtempSync(path.join(tmpdir(), 'tsf-'));
    chmodSync(work, 0o755);
    const img = path.join(work, 'disk.img');
    const mnt = path.join(work, 'mnt');
    mkdirSync(mnt, { mode: 0o755 });
    writeFileSync(img, '');
    spawnSync('/usr/bin/truncate', ['-s', '32M', img]);
    const mk = spawnSync('/usr/sbin/mkfs.ext4', ['-q', '-F', img], { encoding: 'utf8' });
    assert.equal(mk.status, 0, mk.stderr);
    const m = spawnSync('/usr/bin/mount', ['-o', 'loop', img, mnt], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    chmodSync(mnt, 0o755);
    let frozen = false;
    const thaw = () => {
      if (frozen) spawnSync('/usr/sbin/fsfreeze', ['--unfreeze', mnt]);
      frozen = false;
    };
    let d: RootdHandle | null = null;
    try {
      const auditPath = path.join(mnt, 'audit.log');
      d = await startRootd({ config: { audit_log: auditPath } });
      const f = spawnSync('/usr/sbin/fsfreeze', ['--freeze', mnt], { encoding: 'utf8' });
      assert.equal(f.status, 0, f.stderr);
      frozen = true;
      // 3,000 refused requests, each audited with about 4 KiB of parameters: 12 MB of records.
      const c = await connectRaw(d.socketPath);
      const params: Record<string, string> = {};
      for (let k = 0; k < 40; k++) params[`p${k}`] = 'x'.repeat(200);
      for (let round = 0; round < 30; round++) {
        const lines = Array.from({ length: 100 }, (_, i) =>
          JSON.stringify({ type: 'execute_command', request_id: `f${round}-${i}`, data: { module: 'systeminfo', action: 'get_hostname', parameters: params } }),
        );
        c.write(lines.join('\n') + '\n');
        const res = await c.next(100, 30_000);
        assert.ok(res.every((r) => (r.data as { code: string }).code === 'invalid-params'));
      }
      const ping = await rootPing(d);
      assert.equal(ping.type, 'success');
      await until('the log to say records are dropped', () => /records are dropped and counted until it catches up/.test(d!.log()));
      thaw();
      // The next record after the disk catches up is preceded by the count of those dropped.
      let afters = 0;
      await until(
        'an audit-dropped record',
        async () => {
          afters++;
          await oneShot(d!.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'after', data: { module: 'systeminfo', action: 'get_hostname' } }));
          return auditLines(auditPath).some((l) => l.type === 'audit-dropped');
        },
        30_000,
      );
      const note = auditLines(auditPath).find((l) => l.type === 'audit-dropped')!;
      assert.ok((note.count as number) > 1000, `dropped count ${note.count}`);
      assert.match(String(note.error), /^\d+ audit records dropped since /);
      // What was held for the frozen disk fits in the 4 MiB bound; the rest was counted, not kept.
      const kept = readFileSync(auditPath, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"request_id":"f'));
      const keptBytes = kept.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
      assert.ok(keptBytes <= 4 * 1024 * 1024, `${keptBytes} bytes of records were held for the frozen disk`);
      const notes = auditLines(auditPath).filter((l) => l.type === 'audit-dropped');
      const aftersWritten = auditLines(auditPath).filter((l) => l.request_id === 'after').length;
      const counted = notes.reduce((n, l) => n + (l.count as number), 0);
      assert.equal(kept.length + aftersWritten + counted, 3000 + afters, `every record either written or counted: ${kept.length} + ${aftersWritten} written, notes ${notes.map((l) => l.count).join(' ')}`);
      c.close();
    } finally {
      thaw();
      await d?.stop();
      spawnSync('/usr/bin/umount', [mnt]);
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('attack: a full audit disk', () => {
  it('records refused by a full audit disk are counted, and the count is written once there is space again', async () => {
    const mnt = mkdtempSync(path.join(tmpdir(), 'tsa-'));
    chmodSync(mnt, 0o755);
    const m = spawnSync('/usr/bin/mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    let d: RootdHandle | null = null;
    try {
      const auditPath = path.join(mnt, 'audit.log');
      d = await startRootd({ config: { audit_log: auditPath } });
      spawnSync('/usr/bin/dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k'], { encoding: 'utf8' });
      const req = (id: string) => JSON.stringify({ type: 'execute_command', request_id: id, data: { module: 'systeminfo', action: 'get_hostname', parameters: { x: 'y'.repeat(250) } } });
      // The first failed write takes the file away; the ones after it are counted.
      await until('the write failure in the log', async () => {
        await oneShot(d!.socketPath, req('fill'));
        return /cannot write the audit log/.test(d!.log());
      });
      for (let i = 0; i < 50; i++) await oneShot(d.socketPath, req(`lost${i}`));
      rmSync(path.join(mnt, 'fill'));
      // rootd opens the file again 5 s after the failure.
      await until(
        'an audit-dropped record',
        async () => {
          await oneShot(d!.socketPath, req('back'));
          return auditLines(auditPath).some((l) => l.type === 'audit-dropped');
        },
        30_000,
      );
      const note = auditLines(auditPath).find((l) => l.type === 'audit-dropped')!;
      assert.ok((note.count as number) >= 50, `dropped count ${note.count}`);
    } finally {
      await d?.stop();
      spawnSync('/usr/bin/umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

describe('attack: SIGHUP that cannot be applied', () => {
  let users: Users;
  before(async () => {
    users = await ensureTestUsers();
  });

  const reconfigure = (d: RootdHandle, change: Record<string, unknown>) => {
    const cfg = parse(readFileSync(d.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(d.configPath, stringify({ ...cfg, ...change }));
    d.signal('SIGHUP');
  };
  const audited = async (d: RootdHandle, id: string) => {
    await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: id, data: { module: 'systeminfo', action: 'get_uptime' } }));
  };

  it('SIGHUP with a new audit_log moves auditing to it; one in a directory another user owns is refused loudly and the old file kept', async () => {
    const d = await startRootd();
    const userDir = mkdtempSync(path.join(tmpdir(), 'tsu-'));
    chownSync(userDir, users.tuxsec.uid, users.tuxsec.gid);
    try {
      const second = path.join(d.dir, 'audit2.log');
      reconfigure(d, { audit_log: second });
      await until('audit_log changed', () => /audit_log changed/.test(d.log()));
      await audited(d, 'to-second');
      await until('the record in the new file', () => auditLines(second).some((l) => l.request_id === 'to-second'));
      assert.ok(!auditLines(d.auditPath).some((l) => l.request_id === 'to-second'), 'record also in the old file');

      reconfigure(d, { audit_log: path.join(userDir, 'audit.log') });
      await until('the refusal in the log', () => /cannot open the new audit_log; still auditing to /.test(d.log()));
      await audited(d, 'still-second');
      await until('the record in the kept file', () => auditLines(second).some((l) => l.request_id === 'still-second'));
      assert.ok(!existsSync(path.join(userDir, 'audit.log')), 'rootd created a file in a user-owned directory');
    } finally {
      await d.stop();
      rmSync(userDir, { recursive: true, force: true });
    }
  });

  it('SIGHUP with a new log_file moves logging to it; an unusable one is refused loudly', async () => {
    const logDir = mkdtempSync(path.join(tmpdir(), 'tsl-'));
    chmodSync(logDir, 0o755);
    const userDir = mkdtempSync(path.join(tmpdir(), 'tsu-'));
    chownSync(userDir, users.tuxsec.uid, users.tuxsec.gid);
    const first = path.join(logDir, 'rootd.log');
    const d = await startRootd({ config: { log_file: first } });
    try {
      const second = path.join(logDir, 'rootd2.log');
      reconfigure(d, { log_file: second });
      await until('logging in the new file', () => existsSync(second) && /configuration reloaded/.test(readFileSync(second, 'utf8')));
      reconfigure(d, { log_file: path.join(userDir, 'rootd.log') });
      await until('the refusal in the kept file', () => /cannot open the new log_file; still logging to /.test(readFileSync(second, 'utf8')));
      assert.ok(!existsSync(path.join(userDir, 'rootd.log')));
    } finally {
      await d.stop();
      rmSync(logDir, { recursive: true, force: true });
      rmSync(userDir, { recursive: true, force: true });
    }
  });

  it('a user lookup that fails during a reload keeps the uid the user had; a user that no longer exists is dropped with a warning', async () => {
    // A failing NSS lookup (LDAP down, getent timing out) cannot be produced on this machine
    // without breaking every other process's lookups, so the lookup is a function here; the
    // real getent's "not found" (exit 2) versus failure is covered by lookupUser below.
    const logged: Array<[string, Record<string, unknown>, string]> = [];
    const log = {
      warn: (o: object, m: string) => void logged.push(['warn', o as Record<string, unknown>, m]),
      error: (o: object, m: string) => void logged.push(['error', o as Record<string, unknown>, m]),
    };
    const previous = new Map([
      ['alice', 1001],
      ['bob', 1002],
    ]);
    const { resolveUsers } = await import('../../src/rootd/access.ts');
    const next = await resolveUsers(['alice', 'bob', 'carol', '4242'], 'allowed_users', {
      log,
      previous,
      lookup: async (name) => {
        if (name === 'alice') throw new Error('getent timed out');
        if (name === 'bob') return null;
        if (name === 'carol') throw new Error('getent exited with 1');
        return { uid: 9 };
      },
    });
    assert.deepEqual([...next], [
      ['alice', 1001],
      ['4242', 4242],
    ]);
    assert.deepEqual(
      logged.map(([lvl, o, m]) => [lvl, o.user, m]),
      [
        ['error', 'alice', 'cannot look up user; keeping the uid it had before'],
        ['warn', 'bob', 'unknown user in config; ignored until it exists (SIGHUP re-reads)'],
        ['error', 'carol', 'cannot look up user; not served until a reload can look it up'],
      ],
    );
    const { lookupUser } = await import('../../src/os/users.ts');
    assert.equal(await lookupUser('tuxsec-no-such-user'), null);
    assert.equal((await lookupUser(users.member.name))?.uid, users.member.uid);
  });
});
