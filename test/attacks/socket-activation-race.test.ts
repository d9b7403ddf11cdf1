// Socket activation while the socket directory is still group-writable (the seed's 0770
// root:tuxsec, before an upgrade): rootd checks that systemd's socket is still at its path, and
// only then makes the directory root's. A member who replaces the socket between that check and
// the chmod leaves an impostor at the path that rootd's clients (root's tuxsec-cli too) would
// reach. The test calls listenOnFd, as main does after its check, with the member's socket
// already in place (the race's outcome, made deterministic), in a child process that inherits
// systemd's listening socket as fd 3 as rootd does.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { asUser, ensureTestUsers } from '../helpers/users.ts';
import type { UserEntry } from '../../src/os/users.ts';

const SOCKET_TS = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/rootd/socket.ts')).href;

/** Runs listenOnFd on fd 3 (inherited) in a child; resolves with what became of it. */
function listenOnInheritedFd(fd: number): Promise<{ ok?: true; error?: string; message?: string; warnings?: string[] }> {
  const script = `const { listenOnFd } = await import(${JSON.stringify(SOCKET_TS)});
const net = await import('node:net');
const warnings = [];
const s = new net.Server();
try { await listenOnFd(s, 3, { warn: (m) => warnings.push(m) }); process.stdout.write(JSON.stringify({ ok: true, warnings })); }
catch (e) { process.stdout.write(JSON.stringify({ error: e.constructor.name, message: e.message, warnings })); }
process.exit(0);`;
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit', fd] });
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    p.once('exit', () => {
      clearTimeout(t);
      resolve(JSON.parse(out || '{}') as { ok?: true; error?: string; message?: string });
    }),
  );
}

describe('socket activation against a member racing the directory repair', () => {
  let member: UserEntry;
  let gid: number;
  before(async () => {
    const u = await ensureTestUsers();
    member = u.member;
    gid = u.tuxsecGid;
  });

  it("listenOnFd refuses the socket systemd handed over when, once the directory is root's, a member's socket is at its path", async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'tsr-race-'));
    chmodSync(base, 0o755);
    const dir = path.join(base, 'run');
    mkdirSync(dir);
    chownSync(dir, 0, gid);
    chmodSync(dir, 0o770);
    const sock = path.join(dir, 'rootd.sock');
    // systemd's listener: bound by root, handed to rootd by its fd.
    const systemd = net.createServer();
    await new Promise<void>((r) => systemd.listen(sock, r));
    const fd = (systemd as unknown as { _handle: { fd: number } })._handle.fd;
    // The member unlinks systemd's socket and binds an impostor (the directory lets them).
    const [f, argv] = asUser(member, process.execPath, [
      '-e',
      `const fs=require('fs'),net=require('net');fs.unlinkSync(process.argv[1]);
       net.createServer(c=>c.end('{"type":"success","request_id":"x","data":{"pong":"impostor"}}\\n')).listen(process.argv[1],()=>process.stdout.write('up'));`,
      sock,
    ]);
    const fake = spawn(f, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((r) => fake.stdout.once('data', () => r()));
      assert.equal(lstatSync(sock).uid, member.uid, 'the impostor is in place');
      const r = await listenOnInheritedFd(fd);
      assert.equal(r.error, 'SocketSetupError', JSON.stringify(r));
      assert.match(r.message!, new RegExp(`a socket of uid ${member.uid}, not of root, is there`));
      // The directory is root's now, so a restart of rootd binds its own socket in its place.
      assert.equal((statSync(dir).mode & 0o777).toString(8), '750');
    } finally {
      if (fake.pid) process.kill(fake.pid, 'SIGKILL');
      await new Promise<void>((r) => systemd.close(() => r()));
      rmSync(base, { recursive: true, force: true });
    }
  });
});
