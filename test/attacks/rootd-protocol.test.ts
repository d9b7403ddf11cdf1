/**
 * Attacks on rootd's line protocol by peers that may connect: a member of the socket group
 * that is a read-only user, and the allowed tuxsec user, as real processes of real users.
 * Each case checks that the hostile line gets one clear error, that nothing is granted, and
 * that the same connection and the daemon keep serving.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writePlugin } from '../helpers/plugin.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import type { UserEntry } from '../../src/os/users.ts';

type Res = { type: string; request_id: string; data: Record<string, unknown> };

/**
 * Sends lines as a real user and collects the answers: a small node program run through
 * setpriv, so the daemon sees that user's uid in SO_PEERCRED.
 */
function exchangeAs(user: UserEntry, socketPath: string, payload: string, answers: number): Promise<Res[]> {
  const program = `
    const s = require('net').createConnection(process.argv[1]);
    let buf = '', got = 0;
    s.on('connect', () => { process.stdin.pipe(s, { end: false }); });
    s.on('data', (c) => {
      buf += c;
      got = buf.split('\\n').length - 1;
      if (got >= Number(process.argv[2])) { process.stdout.write(buf); s.destroy(); }
    });
    s.on('close', () => { if (got < Number(process.argv[2])) process.stdout.write(buf); process.exit(0); });
    s.on('error', (e) => { process.stderr.write(e.message); process.exit(2); });`;
  const [file, argv] = asUser(user, process.execPath, ['-e', program, socketPath, String(answers)]);
  return new Promise((resolve, reject) => {
    const p = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`client exited ${code}: ${err}`));
      resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Res));
    });
    p.stdin.on('error', () => {});
    p.stdin.end(payload);
  });
}

const line = (o: unknown) => JSON.stringify(o) + '\n';
const exec = (id: string, module: unknown, action: unknown, parameters: unknown = {}, extra: Record<string, unknown> = {}) =>
  line({ type: 'execute_command', request_id: id, ...extra, data: { module, action, parameters } });
const ping = (id: string) => line({ type: 'ping', request_id: id, data: {} });

/** A plugin with one write action that leaves a mark in a root-only directory when it runs. */
function writeMarkPlugin(): { dir: string; mark: string } {
  const dir = pluginDir('tsa-');
  const mark = path.join(mkdtempSync(path.join(tmpdir(), 'tsa-mark-')), 'ran');
  writePlugin(dir, {
    name: 'markmod',
    description: 'leaves a mark',
    prelude: `import { writeFileSync } from 'node:fs';`,
    actions: `[defineAction({ name: 'mark', description: 'write the mark', access: 'write', params: Params({}),
      handler: () => { writeFileSync(${JSON.stringify(mark)}, 'ran'); return { marked: true }; } })]`,
  });
  return { dir, mark };
}

describe('attacks on the rootd protocol (real daemon, real users)', () => {
  let d: RootdHandle;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  let plugin: { dir: string; mark: string };
  before(async () => {
    users = await ensureTestUsers();
    plugin = writeMarkPlugin();
    // The group member is a read-only user here: it may connect, and may run read actions only.
    d = await startRootd({
      config: {
        allowed_users: ['tuxsec'],
        read_only_users: [users.member.name],
        max_message_bytes: 64 * 1024,
        plugins_dir: plugin.dir,
        modules: { firewalld: { enabled: false } },
      },
    });
  });
  after(async () => {
    assert.equal(await d.stop(), 0, 'rootd exits cleanly after the attacks');
    rmSync(plugin.dir, { recursive: true, force: true });
    rmSync(path.dirname(plugin.mark), { recursive: true, force: true });
  });

  it('identity fields in the JSON give a read-only user no write access', async () => {
    const claims = { uid: 0, gid: 0, user: 'root', peer: { uid: 0 }, credentials: { uid: 0 } };
    const res = await exchangeAs(
      users.member,
      d.socketPath,
      line({ type: 'execute_command', request_id: 'claim', ...claims, data: { ...claims, module: 'systeminfo', action: 'get_hostname', parameters: {} } }) +
        // A write action: refused whatever the JSON claims.
        line({ type: 'execute_command', request_id: 'write', ...claims, data: { ...claims, module: 'markmod', action: 'mark', parameters: {} } }),
      2,
    );
    const byId = new Map(res.map((r) => [r.request_id, r]));
    // The extra fields on the request are ignored (a read action is served, as to any read-only user) ...
    assert.equal(byId.get('claim')?.type, 'success');
    // ... and never turn into root's rights: the write is refused.
    const w = byId.get('write')!;
    assert.equal(w.type, 'error');
    assert.equal(w.data.code, 'permission-denied');
    assert.equal(existsSync(plugin.mark), false, 'the write action never ran');
    // The same action as the allowed user does run: the refusal above was the access check.
    const ok = await exchangeAs(users.tuxsec, d.socketPath, exec('mine', 'markmod', 'mark'), 1);
    assert.equal(ok[0]?.type, 'success');
    assert.equal(existsSync(plugin.mark), true);
  });

  // Names that are properties of every JS object: they must never reach a prototype method.
  const protoNames = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'prototype'];
  for (const name of protoNames) {
    it(`a request type, module or action named "${name}" is refused and the connection keeps serving`, async () => {
      const payload =
        line({ type: name, request_id: 't', data: {} }) +
        exec('m', name, 'get_hostname') +
        exec('a', 'systeminfo', name) +
        line({ type: 'module_info', request_id: 'i', data: { module: name } }) +
        ping('after');
      const res = await exchangeAs(users.tuxsec, d.socketPath, payload, 5);
      const byId = new Map(res.map((r) => [r.request_id, r]));
      assert.equal(byId.get('t')?.data.code, 'unknown-type');
      for (const id of ['m', 'a', 'i']) {
        const r = byId.get(id)!;
        assert.equal(r.type, 'error', `${id}: ${JSON.stringify(r)}`);
        assert.ok(['module-not-found', 'action-not-found', 'invalid-request'].includes(String(r.data.code)), `${id}: ${String(r.data.code)}`);
        assert.match(String(r.data.error), /\S/);
      }
      assert.equal(byId.get('after')?.type, 'success');
    });
  }

  it('poisoned JSON (__proto__ and constructor.prototype anywhere) is refused before any module runs', async () => {
    const poisoned = [
      '{"type":"execute_command","request_id":"p1","data":{"module":"systeminfo","action":"get_uptime","parameters":{"__proto__":{"isAdmin":true}}}}',
      '{"type":"execute_command","request_id":"p2","__proto__":{"uid":0},"data":{"module":"systeminfo","action":"get_uptime"}}',
      '{"type":"execute_command","request_id":"p3","data":{"module":"systeminfo","action":"get_uptime","parameters":{"a":[{"b":{"constructor":{"prototype":{"x":1}}}}]}}}',
      '{"type":"ping","request_id":"p4","data":{"__proto__":null}}',
    ];
    const res = await exchangeAs(users.tuxsec, d.socketPath, poisoned.join('\n') + '\n' + ping('after'), 5);
    const byId = new Map(res.map((r) => [r.request_id, r]));
    for (const id of ['p1', 'p2', 'p3', 'p4']) {
      assert.equal(byId.get(id)?.type, 'error', id);
      assert.equal(byId.get(id)?.data.code, 'invalid-request', id);
      assert.match(String(byId.get(id)?.data.error), /forbidden key/);
    }
    assert.equal(byId.get('after')?.type, 'success');
    // Nothing leaked into the daemon's objects: a fresh request has no inherited isAdmin/uid.
    const again = await exchangeAs(users.tuxsec, d.socketPath, exec('clean', 'systeminfo', 'get_uptime'), 1);
    assert.equal(again[0]?.type, 'success');
  });

  it('a line of exactly max_message_bytes is served; one byte more is refused and the answers before it still arrive', async () => {
    const max = 64 * 1024;
    const head = '{"type":"ping","request_id":"edge","data":{"pad":"';
    const tail = '"}}';
    const fits = head + 'x'.repeat(max - head.length - tail.length) + tail;
    assert.equal(Buffer.byteLength(fits), max);
    const ok = await exchangeAs(users.tuxsec, d.socketPath, fits + '\n', 1);
    assert.equal(ok[0]?.type, 'success');
    assert.equal(ok[0]?.request_id, 'edge');
    const over = head + 'x'.repeat(max + 1 - head.length - tail.length) + tail;
    const res = await exchangeAs(users.tuxsec, d.socketPath, ping('first') + over + '\n' + ping('never'), 2);
    assert.equal(res[0]?.request_id, 'first');
    assert.equal(res[0]?.type, 'success');
    assert.equal(res[1]?.data.code, 'message-too-large');
    assert.ok(!res.some((r) => r.request_id === 'never'), 'nothing after the oversized line is read');
  });

  it('deep nesting, huge numbers, lone surrogates and NUL bytes get one clear error each', async () => {
    const cases: Array<[string, string, string[]]> = [
      ['deep', `{"type":"ping","request_id":"deep","data":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`, ['invalid-request']],
      ['huge-number', '{"type":"execute_command","request_id":"huge-number","data":{"module":"systeminfo","action":"get_uptime","parameters":{"n":1e400}}}', ['invalid-params']],
      ['surrogate', '{"type":"execute_command","request_id":"surrogate","data":{"module":"systeminfo\\ud800","action":"get_uptime"}}', ['module-not-found', 'invalid-request']],
      ['nul', '{"type":"execute_command","request_id":"nul","data":{"module":"systeminfo\\u0000","action":"get_uptime"}}', ['module-not-found', 'invalid-request']],
      ['raw-nul', '{"type":"ping","request_id":"raw-nul"\u0000,"data":{}}', ['invalid-json']],
    ];
    const res = await exchangeAs(users.member, d.socketPath, cases.map(([, l]) => l + '\n').join('') + ping('after'), cases.length + 1);
    assert.equal(res.length, cases.length + 1, 'one answer per line');
    for (const [id, , codes] of cases) {
      const r = res.find((x) => x.request_id === id || (id === 'deep' || id === 'raw-nul' ? x.request_id === 'unknown' && codes.includes(String(x.data.code)) : false));
      assert.ok(r, `answer for ${id}`);
      assert.equal(r.type, 'error', id);
      assert.ok(codes.includes(String(r.data.code)), `${id}: ${String(r.data.code)}`);
    }
    // Synchronous answers may overtake asynchronous ones: look the ping up by its id.
    assert.equal(res.find((r) => r.request_id === 'after')?.type, 'success');
  });

  it('a request id that is an object, huge, or holds a newline is never echoed raw', async () => {
    const res = await exchangeAs(
      users.member,
      d.socketPath,
      line({ type: 'ping', request_id: { toString: 'x' }, data: {} }) +
        line({ type: 'ping', request_id: 'y'.repeat(10_000), data: {} }) +
        line({ type: 'ping', request_id: 'a\n{"type":"success"}', data: {} }),
      3,
    );
    assert.equal(res.length, 3, 'exactly three answer lines: an id with a newline cannot forge a fourth');
    assert.equal(res[0]?.request_id, 'unknown');
    assert.equal(res[1]?.request_id, 'unknown');
    assert.equal(res[2]?.request_id, 'a\n{"type":"success"}');
  });
});
