import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { connectRaw, oneShot, rssKiB } from '../helpers/raw.ts';
import { lookupGroup } from '../../src/os/users.ts';

describe('rootd protocol (real daemon as root)', () => {
  let d: RootdHandle;
  before(async () => {
    d = await startRootd({ config: { max_message_bytes: 1024 * 1024 } });
  });
  after(async () => {
    assert.equal(await d.stop(), 0, 'clean exit on SIGTERM');
  });

  it('socket and directory have the documented owner and modes', async () => {
    const gid = (await lookupGroup('tuxsec'))!.gid;
    const dir = statSync(path.dirname(d.socketPath));
    assert.equal(dir.mode & 0o7777, 0o750);
    assert.equal(dir.uid, 0);
    assert.equal(dir.gid, gid);
    const sock = statSync(d.socketPath);
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o777, 0o660);
    assert.equal(sock.gid, gid);
  });

  it('one-shot ping answers pong with the same request_id', async () => {
    const res = await oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: 'abc-1', data: {} }));
    assert.deepEqual(res, { type: 'success', request_id: 'abc-1', data: { pong: true } });
  });

  it('a numeric request_id comes back as the same number, as the Python rootd echoed it', async () => {
    const ping = await oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: 42, data: {} }));
    assert.deepEqual(ping, { type: 'success', request_id: 42, data: { pong: true } });
    const run = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 7.5, data: { module: 'systeminfo', action: 'get_uptime' } }));
    assert.equal(run.request_id, 7.5);
    const nf = await oneShot(d.socketPath, JSON.stringify({ type: 'module_info', request_id: 0, data: { module: 'nope' } }));
    assert.deepEqual(nf, { type: 'error', request_id: 0, data: { error: 'Module not found: nope', code: 'module-not-found' } });
  });

  it('list_modules, module_info and system_info answer in the compatible shapes', async () => {
    const lm = await oneShot(d.socketPath, JSON.stringify({ type: 'list_modules', request_id: 'r', data: {} }));
    assert.equal(lm.type, 'success');
    assert.ok(((lm.data as { modules: string[] }).modules).includes('systeminfo'));
    const mi = await oneShot(d.socketPath, JSON.stringify({ type: 'module_info', request_id: 'r', data: { module: 'systeminfo' } }));
    const info = (mi.data as { module_info: { name: string; capabilities: Array<{ name: string; parameters: unknown[] }> } }).module_info;
    assert.equal(info.name, 'systeminfo');
    for (const a of ['get_info', 'get_hostname', 'get_os_info', 'get_kernel_version', 'get_uptime', 'list_modules']) {
      assert.ok(info.capabilities.some((c) => c.name === a), `capability ${a}`);
    }
    const si = await oneShot(d.socketPath, JSON.stringify({ type: 'system_info', request_id: 'r', data: {} }));
    const sd = si.data as { success: boolean; data: Record<string, unknown> };
    assert.equal(sd.success, true);
    for (const k of ['hostname', 'fqdn', 'os', 'kernel', 'uptime_seconds', 'distribution']) assert.ok(k in sd.data, `get_info has ${k}`);
    for (const k of ['system', 'release', 'version', 'machine', 'processor']) assert.ok(k in (sd.data.os as object), `os.${k}`);
    // The host's own ID, whatever the distribution: os-release(5) says /etc first, then /usr/lib.
    const osRelease = ['/etc/os-release', '/usr/lib/os-release'].map((f) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } }).find((t) => t);
    const id = /^ID="?([^"\n]*)"?$/m.exec(osRelease ?? '')?.[1];
    assert.ok(id, 'this host has an os-release ID');
    assert.equal((sd.data.distribution as Record<string, string>).id, id);
  });

  it('execute_command returns success with data; errors keep the compatible shape with a code', async () => {
    const ok = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'x', data: { module: 'systeminfo', action: 'get_uptime', parameters: {} } }));
    const od = ok.data as { success: boolean; data: Record<string, unknown> };
    assert.equal(od.success, true);
    assert.match(String(od.data.uptime_formatted), /^\d+d \d+h \d+m$/);
    const nf = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'y', data: { module: 'nope', action: 'x' } }));
    assert.deepEqual(nf, { type: 'error', request_id: 'y', data: { error: 'Module not found: nope', code: 'module-not-found', success: false } });
    const unk = await oneShot(d.socketPath, JSON.stringify({ type: 'bogus', request_id: 'z', data: {} }));
    assert.equal(unk.type, 'error');
    assert.equal((unk.data as { code: string }).code, 'unknown-type');
    const miss = await oneShot(d.socketPath, JSON.stringify({ type: 'module_info', request_id: 'm', data: {} }));
    // The Python daemon's words, for module_info and execute_command alike.
    assert.equal((miss.data as { error: string }).error, 'Module name is required');
    const noModule = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'n', data: { module: '', action: 'get_info' } }));
    assert.equal((noModule.data as { error: string }).error, 'Module name is required');
  });

  it('invalid JSON gets the compatible error and the connection keeps working', async () => {
    const c = await connectRaw(d.socketPath);
    c.write('this is not json\n');
    assert.deepEqual((await c.next())[0], { type: 'error', request_id: 'unknown', data: { error: 'Invalid JSON', code: 'invalid-json' } });
    c.write(JSON.stringify({ type: 'ping', request_id: 'after', data: {} }) + '\n');
    assert.equal((await c.next())[0]!.request_id, 'after');
    c.close();
  });

  const bad: Array<[string, unknown, string]> = [
    ['__proto__ key in parameters', '{"type":"execute_command","request_id":"p","data":{"module":"systeminfo","action":"get_uptime","parameters":{"__proto__":{"polluted":1}}}}', 'invalid-request'],
    ['constructor key in data', '{"type":"execute_command","request_id":"p","data":{"constructor":{"prototype":{"x":1}},"module":"systeminfo","action":"get_uptime"}}', 'invalid-request'],
    ['constructor holding prototype deep in parameters', '{"type":"execute_command","request_id":"p","data":{"module":"systeminfo","action":"get_uptime","parameters":{"a":[{"constructor":{"prototype":{"x":1}}}]}}}', 'invalid-request'],
    // Pollutes nothing: no longer refused as a forbidden key, it reaches the parameter check.
    ['a plain "prototype" key in parameters', { module: 'systeminfo', action: 'get_uptime', parameters: { prototype: 'x' } }, 'invalid-params'],
    ['a type that is an object with a toString key', '{"type":{"toString":0},"request_id":"p","data":{}}', 'invalid-request'],
    ['action named constructor', { module: 'systeminfo', action: 'constructor' }, 'action-not-found'],
    ['action named toString', { module: 'systeminfo', action: 'toString' }, 'action-not-found'],
    ['action named __proto__', { module: 'systeminfo', action: '__proto__' }, 'action-not-found'],
    ['module named hasOwnProperty (not a module name)', { module: 'hasOwnProperty', action: 'x' }, 'invalid-request'],
    ['module of wrong type', { module: 42, action: 'get_uptime' }, 'invalid-request'],
    ['parameters as an array', { module: 'systeminfo', action: 'get_uptime', parameters: [1, 2] }, 'invalid-params'],
    ['unknown parameter', { module: 'systeminfo', action: 'get_uptime', parameters: { extra: true } }, 'invalid-params'],
  ];
  for (const [name, data, code] of bad) {
    it(`refuses ${name} with ${code} and answers the next request`, async () => {
      const line = typeof data === 'string' ? data : JSON.stringify({ type: 'execute_command', request_id: 'p', data });
      const c = await connectRaw(d.socketPath);
      c.write(line + '\n' + JSON.stringify({ type: 'ping', request_id: 'next', data: {} }) + '\n');
      const [r1, r2] = await c.next(2);
      const byId = new Map([r1, r2].map((r) => [r!.request_id, r!]));
      assert.equal(byId.get('p')?.type, 'error');
      assert.equal((byId.get('p')?.data as { code: string }).code, code);
      assert.equal(byId.get('next')?.type, 'success');
      c.close();
    });
  }

  it('refuses deep nesting before parsing', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const res = await oneShot(d.socketPath, `{"type":"ping","request_id":"deep","data":{"x":${deep}}}`);
    assert.equal(res.type, 'error');
    assert.equal((res.data as { code: string }).code, 'invalid-request');
    assert.match((res.data as { error: string }).error, /nesting/);
  });

  it('a 4 MiB line with no newline is refused, the connection closed, and memory stays bounded', async () => {
    const pid = d.proc.pid!;
    const before = await rssKiB(pid);
    for (let i = 0; i < 8; i++) {
      const c = await connectRaw(d.socketPath);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let j = 0; j < 64 && !c.sock.destroyed; j++) c.sock.write(chunk);
      const [res] = await c.next(1);
      assert.equal((res!.data as { code: string }).code, 'message-too-large');
      await c.closed;
    }
    const afterKiB = await rssKiB(pid);
    assert.ok(afterKiB - before < 64 * 1024, `rss grew by ${afterKiB - before} KiB`);
    const res = await oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: 'alive', data: {} }));
    assert.equal(res.request_id, 'alive');
  });

  it('answers 1,000 pipelined requests on one connection, each with its own id', async () => {
    const c = await connectRaw(d.socketPath);
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const req =
        i % 3 === 0
          ? { type: 'ping', request_id: `q${i}`, data: {} }
          : { type: 'execute_command', request_id: `q${i}`, data: { module: 'systeminfo', action: i % 3 === 1 ? 'get_hostname' : 'get_uptime', parameters: {} } };
      lines.push(JSON.stringify(req));
    }
    c.write(lines.join('\n') + '\n');
    const res = await c.next(1000, 30_000);
    const ids = new Set(res.map((r) => r.request_id));
    assert.equal(ids.size, 1000);
    for (let i = 0; i < 1000; i++) assert.ok(ids.has(`q${i}`));
    assert.ok(res.every((r) => r.type === 'success'));
    c.close();
  });

  it('a client that half-closes after an unterminated request still gets its answer', async () => {
    const c = await connectRaw(d.socketPath);
    c.sock.end(JSON.stringify({ type: 'ping', request_id: 'half', data: {} }));
    const [res] = await c.next(1);
    assert.equal(res!.request_id, 'half');
  });

  it('writes one audit line per module request with peer uid and pid, redacting secrets', async () => {
    await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'aud', data: { module: 'systeminfo', action: 'get_uptime', parameters: { api_key: 'SECRET-123' } } }));
    await new Promise((r) => setTimeout(r, 300));
    d.signal('SIGHUP'); // reopen flushes nothing by itself; wait for the async writer instead
    let text = '';
    for (let i = 0; i < 50 && !text.includes('"aud"'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = (await import('node:fs')).readFileSync(d.auditPath, 'utf8');
    }
    const rec = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.request_id === 'aud');
    assert.ok(rec, 'audit record written');
    assert.equal(rec.uid, 0);
    assert.equal(typeof rec.pid, 'number');
    assert.equal(rec.module, 'systeminfo');
    assert.equal(rec.action, 'get_uptime');
    assert.equal(rec.outcome, 'error');
    assert.equal(rec.parameters.api_key, '[redacted]');
    assert.ok(!text.includes('SECRET-123'));
  });
});
