import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { AGENT_JS, readJournal, until } from '../agent/harness.ts';
import { API_KEY, startPushAgent } from '../agent/push-harness.ts';
import { SHELL_UNDER_TEST, ssh, startSshMode, type SshdHandle, type SshMode } from '../helpers/sshd.ts';
import { run } from '../../src/os/exec.ts';
import { jobCommandLine } from '../../src/protocol/ssh-job.ts';
import { DeliveryError } from '../../src/server/delivery/transport.ts';
import { SshTransport } from '../../src/server/delivery/ssh.ts';
import type { JobEnvelope } from '../../src/protocol/jobs.ts';

const RULE = `rule family="ipv4" source address="10.0.0.0/8" service name="ssh" log prefix='it'"'"'s $HOME \`id\` $(id); a|b & c' accept`;

describe('SshTransport over a real sshd and tuxsec-shell (SSH-mode jobs)', () => {
  let m: SshMode;
  let n = 0;
  const signal = new AbortController().signal;
  before(async () => {
    m = await startSshMode();
  });
  after(async () => {
    await m?.stop();
  });

  function transport(d: SshdHandle, o: { identity?: string; knownHosts?: string; keepAliveSeconds?: number } = {}): SshTransport {
    return new SshTransport(
      { host: '127.0.0.1', port: d.port, user: 'tuxsec', knownHost: readFileSync(o.knownHosts ?? d.knownHosts, 'utf8') },
      { identityFile: o.identity ?? m.keys.key, stateDir: path.join(m.work, 'server'), keepAliveSeconds: o.keepAliveSeconds, timeoutMs: 120_000 },
    );
  }
  const runs = () => (existsSync(m.countFile) ? readFileSync(m.countFile, 'utf8').length : 0);
  const job = (module: string, action: string, params: Record<string, unknown> = {}): JobEnvelope => ({ id: `ssh-job-${process.pid}-${++n}`, module, action, params });

  it('execute runs systeminfo get_hostname and returns the result shape of a pull job', async () => {
    const t = transport(m.keyed);
    try {
      const j = job('systeminfo', 'get_hostname');
      const r = await t.execute(j, signal);
      assert.deepEqual(Object.keys(r).sort(), ['commandId', 'duration_ms', 'finished_at', 'output', 'started_at', 'status', 'success']);
      assert.equal(r.commandId, j.id);
      assert.equal(r.status, 'completed');
      assert.equal(r.success, true);
      assert.equal((r.output as { hostname: string }).hostname, hostname());
      assert.ok(Date.parse(r.finished_at!) >= Date.parse(r.started_at!));
      // Through the agent's journal in its state_dir, as pull and push jobs.
      // (its start with the request's hash, its finish with the result kept for a repeated id).
      const [start, finish, ...more] = readJournal(m.agent).filter((e) => e.s === j.id || e.f === j.id) as unknown as Array<Record<string, unknown>>;
      assert.deepEqual(more, []);
      assert.deepEqual({ ...start, h: undefined }, { s: j.id, m: 'systeminfo', a: 'get_hostname', t: r.started_at, h: undefined });
      assert.match(String(start!.h), /^[0-9a-f]{32}$/);
      assert.equal(finish!.f, j.id);
      assert.deepEqual((finish!.r as { output: unknown }).output, r.output);
    } finally {
      await t.close();
    }
  });

  it('execute works through the user CA certificate and ForceCommand too', async () => {
    const t = transport(m.ca, { identity: m.keys.certKey });
    try {
      const r = await t.execute(job('systeminfo', 'get_hostname'), signal);
      assert.equal(r.status, 'completed');
    } finally {
      await t.close();
    }
  });

  it('a firewalld-style rule with spaces, quotes, $ and backquotes arrives whole', async () => {
    const t = transport(m.keyed);
    try {
      const r = await t.execute(job('marker', 'echo', { rule: RULE }), signal);
      assert.equal(r.status, 'completed', r.error);
      assert.deepEqual(r.output, { rule: RULE });
    } finally {
      await t.close();
    }
  });

  it('the same job id sent twice, and twice at once, runs once and answers the stored result', async () => {
    const t = transport(m.keyed);
    try {
      const before = runs();
      const j = job('marker', 'count');
      const first = await t.execute(j, signal);
      assert.equal(first.status, 'completed', first.error);
      const again = await t.execute(j, signal);
      assert.deepEqual(again, first);
      const k = job('marker', 'count', { sleep_ms: 500 });
      const [a, b] = await Promise.all([t.execute(k, signal), t.execute(k, signal)]);
      assert.deepEqual(a, b);
      assert.equal(runs(), before + 2);
    } finally {
      await t.close();
    }
  });

  it('tuxsec-shell -c with the same job at once, as tuxsec: one runs it, the other waits for the lock and answers its result', async () => {
    // Without sshd: the login shell is shared by every test process on this machine.
    const before = runs();
    const j = job('marker', 'count', { sleep_ms: 500 });
    const line = jobCommandLine(j);
    const call = () =>
      run(SHELL_UNDER_TEST, ['--config', path.join(m.work, 'shell.yaml'), '-c', line], { uid: m.agent.uid, gid: m.agent.gid, timeoutMs: 120_000 });
    const [a, b] = await Promise.all([call(), call()]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.equal(JSON.parse(a.stdout).status, 'completed');
    assert.equal(runs(), before + 1);
  });

  it('a call stopped after the job started is retryable; the job finishes and the retry gets its result without running it again', async () => {
    const t = transport(m.keyed);
    try {
      const before = runs();
      const j = job('marker', 'count', { sleep_ms: 2000 });
      const ac = new AbortController();
      const call = t.execute(j, ac.signal);
      await until('the job started', () => readJournal(m.agent).some((e) => e.s === j.id), 60_000, 50);
      ac.abort();
      await assert.rejects(call, (e: DeliveryError) => e.retryable === true && /stopped before the answer came; the job may have run/.test(e.message));
      await until('the job finished', () => readJournal(m.agent).some((e) => e.f === j.id), 60_000, 50);
      const r = await t.execute(j, signal);
      assert.equal(r.status, 'completed', r.error);
      assert.deepEqual(r.output, { runs: before + 1 });
      assert.equal(runs(), before + 1);
    } finally {
      await t.close();
    }
  });

  it('tuxsec-agent does not start on the state_dir while an SSH-mode job runs there', async () => {
    const t = transport(m.keyed);
    const j = job('marker', 'count', { sleep_ms: 3000 });
    const call = t.execute(j, signal);
    try {
      await until('the job started', () => readJournal(m.agent).some((e) => e.s === j.id), 60_000, 50);
      const conf = path.join(m.agent.dir, 'pull.yaml');
      writeFileSync(conf, readFileSync(m.agent.configPath, 'utf8') + 'server_url: https://127.0.0.1:1/\nagent_id: a1\napi_key: k1\n', { mode: 0o640 });
      chownSync(conf, 0, m.agent.gid);
      const r = await run(process.execPath, [AGENT_JS, '--config', conf], { uid: m.agent.uid, gid: m.agent.gid, timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot start: an SSH-mode job \(tuxsec-shell\) is running with state_dir /);
      assert.equal((await call).status, 'completed');
    } finally {
      await call.catch(() => undefined);
      await t.close();
    }
  });

  it('keepAliveSeconds reuses one connection (ControlMaster) and close() ends it', async () => {
    const t = transport(m.keyed, { keepAliveSeconds: 60 });
    const dir = (t as unknown as { dir: string }).dir;
    const masters = () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            // The master renames itself "ssh: <ControlPath> [mux]".
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dir}/cm`);
          } catch {
            return false;
          }
        });
    try {
      assert.equal((await t.execute(job('systeminfo', 'get_hostname'), signal)).status, 'completed');
      assert.equal(statSync(path.join(dir, 'cm')).isSocket(), true);
      assert.equal(masters().length, 1);
      assert.equal((await t.execute(job('systeminfo', 'get_hostname'), signal)).status, 'completed');
    } finally {
      await t.close();
    }
    await until('the master exited', () => masters().length === 0, 30_000, 50);
    assert.equal(existsSync(dir), false);
  });

  it('a wrong pinned host key: refused, not retryable, says so, and nothing ran', async () => {
    // The other sshd's host key: a different host answering at this address.
    const t = transport(m.keyed, { knownHosts: m.ca.knownHosts });
    try {
      const before = runs();
      await assert.rejects(t.execute(job('marker', 'count'), signal), (e: DeliveryError) => {
        assert.ok(e instanceof DeliveryError);
        assert.equal(e.retryable, false);
        assert.match(e.message, /^cannot run job "ssh-job-\d+-\d+" on tuxsec@127\.0\.0\.1:\d+ over SSH: the host's key does not match the pinned key \(another host, or its key was changed\); not retried/);
        return true;
      });
      assert.equal(runs(), before);
    } finally {
      await t.close();
    }
  });

  it('the pinned known_hosts file holds only the pinned key, mode 0600, in a private directory', () => {
    const t = transport(m.keyed);
    const dir = (t as unknown as { dir: string }).dir;
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const kh = path.join(dir, 'known_hosts');
    assert.equal(statSync(kh).mode & 0o777, 0o600);
    const key = readFileSync(m.keyed.knownHosts, 'utf8').split(' ').slice(1).join(' ');
    assert.equal(readFileSync(kh, 'utf8'), `tuxsec-agent ${key}`);
    return t.close();
  });

  it('a login the agent refuses is not retried', async () => {
    const t = transport(m.keyed, { identity: m.keys.ca });
    try {
      await assert.rejects(t.execute(job('systeminfo', 'get_hostname'), signal), (e: DeliveryError) => e.retryable === false && /the login was refused/.test(e.message));
    } finally {
      await t.close();
    }
  });

  it('no sshd listening: retryable', async () => {
    const t = new SshTransport(
      { host: '127.0.0.1', port: 1, user: 'tuxsec', knownHost: readFileSync(m.keyed.knownHosts, 'utf8') },
      { identityFile: m.keys.key, stateDir: path.join(m.work, 'server') },
    );
    try {
      await assert.rejects(t.execute(job('systeminfo', 'get_hostname'), signal), (e: DeliveryError) => e.retryable === true && /cannot connect: .*Connection refused/.test(e.message));
    } finally {
      await t.close();
    }
  });

  it('the read-only key journals a refusal for a write action and never runs it', async () => {
    const t = transport(m.keyed, { identity: m.readOnlyKey });
    try {
      const before = runs();
      const r = await t.execute(job('marker', 'count'), signal);
      assert.equal(r.status, 'failed');
      assert.equal(r.code, 'permission-denied');
      assert.match(r.error!, /^cannot run marker "count": read-only mode allows only read actions \(its access class is "write"\)$/);
      assert.equal(runs(), before);
      assert.equal((await t.execute(job('marker', 'look'), signal)).status, 'completed');
    } finally {
      await t.close();
    }
  });

  it('tuxsec-shell refuses the job form with a bad envelope and runs nothing', () => {
    const before = runs();
    const journal = readJournal(m.agent).length;
    const bad: Array<[string, RegExp]> = [
      [`tuxsec-cli execute marker count --json-params '[1]' --job-id bad-1`, /cannot run job "bad-1": --json-params must be a JSON object, got \[1\]/],
      [`tuxsec-cli execute marker count --json-params '{' --job-id bad-2`, /cannot run job "bad-2": --json-params is not JSON/],
      [`tuxsec-cli execute marker count --job-id bad-3 --json-params '{}'`, /expected tuxsec-cli execute <module> <action> --json-params <object> --job-id <id>/],
      [`tuxsec-cli execute 'marker;id' count --json-params '{}' --job-id bad-4`, /cannot run job "bad-4": "module": .*"marker;id"/],
      [`tuxsec-cli execute marker count --json-params '{}' --job-id ''`, /missing or invalid "id" ""/],
      [`tuxsec-cli execute marker count --json-params '{}' --job-id=bad-5`, /expected tuxsec-cli execute/],
    ];
    for (const [line, re] of bad) {
      const r = ssh(m.keyed, m.keys.key, line);
      assert.equal(r.status, 126, `${line}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, re, line);
    }
    assert.equal(runs(), before);
    assert.equal(readJournal(m.agent).length, journal);
  });

  it('a job first pushed, then sent over SSH, runs once; refused over SSH while the push agent holds the state_dir', async () => {
    const push = await startPushAgent({ config: { state_dir: m.agent.stateDir, rootd_socket: m.rootd.socketPath } });
    const t = transport(m.keyed);
    let pushed: Record<string, unknown>;
    const j = job('marker', 'count');
    const before = runs();
    try {
      const reply = await push.request('POST', '/execute', { body: JSON.stringify(j), headers: { 'x-api-key': API_KEY } });
      assert.equal(reply.status, 200, reply.body);
      pushed = reply.json;
      assert.equal(pushed.status, 'completed');
      await assert.rejects(t.execute(j, signal), (e: DeliveryError) => e.retryable === false && /tuxsec-agent \(pid \d+\) uses state_dir .* in pull or push mode/.test(e.message));
    } finally {
      await push.stop();
    }
    try {
      const r = await t.execute(j, signal);
      assert.equal(r.status, 'completed');
      assert.equal(r.started_at, pushed.started_at);
      assert.deepEqual(r.output, pushed.result);
      assert.equal(runs(), before + 1);
    } finally {
      await t.close();
    }
  });
});
