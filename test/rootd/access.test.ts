import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startRootd, CLI_JS, type RootdHandle } from '../helpers/rootd.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import type { UserEntry } from '../../src/os/users.ts';

/** Runs tuxsec-cli as a real user (setpriv with that user's groups). */
function cliAs(user: UserEntry, socketPath: string, ...args: string[]) {
  const [file, argv] = asUser(user, process.execPath, [CLI_JS, '--socket', socketPath, ...args]);
  return spawnSync(file, argv, { encoding: 'utf8', timeout: 20_000 });
}

describe('rootd peer access (real users)', () => {
  let d: RootdHandle;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  before(async () => {
    users = await ensureTestUsers();
    d = await startRootd({ config: { allowed_users: ['tuxsec'], read_only_users: [] } });
  });
  after(async () => {
    await d.stop();
  });

  it('serves the tuxsec user', () => {
    const r = cliAs(users.tuxsec, d.socketPath, 'execute', 'systeminfo', 'get_hostname');
    assert.equal(r.status, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).hostname);
  });

  it('refuses a group member not in allowed_users with permission-denied, and audits it', async () => {
    const r = cliAs(users.member, d.socketPath, 'execute', 'systeminfo', 'get_hostname');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^Error: permission denied: uid \d+ may not use tuxsec-rootd/);
    let audit = '';
    for (let i = 0; i < 50 && !audit.includes(`"uid":${users.member.uid}`); i++) {
      await new Promise((res) => setTimeout(res, 100));
      audit = readFileSync(d.auditPath, 'utf8');
    }
    const rec = audit.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((x) => x.uid === users.member.uid);
    assert.ok(rec, 'denied connection audited');
    assert.equal(rec.outcome, 'denied');
    assert.equal(rec.code, 'permission-denied');
  });

  it('gives a user outside the socket group EACCES at connect', () => {
    const r = cliAs(users.outsider, d.socketPath, 'ping');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /permission denied \(is this user in the socket group/);
  });

  it('ignores identity claims in the JSON', () => {
    const [file, argv] = asUser(users.member, process.execPath, [
      '-e',
      `const s=require('net').createConnection(${JSON.stringify(d.socketPath)});
       s.write(JSON.stringify({type:'ping',request_id:'x',uid:0,user:'root',data:{uid:0,peer:{uid:0}}})+'\\n');
       s.on('data',d=>{process.stdout.write(d);s.destroy()});`,
    ]);
    const r = spawnSync(file, argv, { encoding: 'utf8', timeout: 10_000 });
    const res = JSON.parse(r.stdout.split('\n')[0]!);
    assert.equal(res.type, 'error');
    assert.equal(res.data.code, 'permission-denied');
  });

  it('SIGHUP re-reads allowed_users: the member is served after it is added', async () => {
    const { writeFileSync } = await import('node:fs');
    const { parse, stringify } = await import('yaml');
    const cfg = parse(readFileSync(d.configPath, 'utf8'));
    cfg.allowed_users = ['tuxsec', users.member.name];
    writeFileSync(d.configPath, stringify(cfg));
    d.signal('SIGHUP');
    let r = cliAs(users.member, d.socketPath, 'ping');
    for (let i = 0; i < 40 && r.status !== 0; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = cliAs(users.member, d.socketPath, 'ping');
    }
    assert.equal(r.status, 0, r.stderr);
  });
});
