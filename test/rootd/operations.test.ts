import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RootdClient } from '../../src/client/rootd-client.ts';
import type { OperationInfo } from '../../src/protocol/messages.ts';
import { startRootd, CLI_JS, type RootdHandle } from '../helpers/rootd.ts';
import { cli, startNoWait, type CliResult } from '../helpers/cli.ts';
import { pluginDir, writeLongRunningPlugin } from '../helpers/plugin.ts';
import { oneShot } from '../helpers/raw.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import { pidsWithCmdline, uniqueSleepSeconds, waitFor } from '../helpers/procs.ts';

async function statusOf(c: RootdClient, id: string): Promise<OperationInfo> {
  return c.operationStatus(id);
}

describe('rootd long-running operations (real rootd, real users, real tuxsec-cli)', () => {
  let d: RootdHandle;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  let root: RootdClient;
  before(async () => {
    users = await ensureTestUsers();
    const plugins = pluginDir();
    writeLongRunningPlugin(plugins, 'longmod');
    // shortmod's actions declare 600 s; rootd.yaml cuts them to 1 s.
    writeLongRunningPlugin(plugins, 'shortmod');
    d = await startRootd({
      config: {
        plugins_dir: plugins,
        allowed_users: [users.tuxsec.name, users.member.name],
        // One slot for ordinary actions: an operation that took it would stall every other request.
        max_concurrent_actions: 1,
        request_timeout: 5,
        max_operations: 3,
        max_operations_per_uid: 2,
        modules: { longmod: {}, shortmod: { operation_timeout: 1 }, firewalld: { enabled: false } },
      },
    });
    root = new RootdClient({ socketPath: d.socketPath, timeoutMs: 30_000 });
  });
  after(async () => {
    root?.close();
    await d?.stop();
  });

  it('execute waits for a long-running action and prints its result as for any action', async () => {
    const r = await cli(d.socketPath, users.tuxsec, 'execute', 'longmod', 'count', '--param', 'steps=5', '--param', 'ms=100');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { counted: 5, uid: users.tuxsec.uid });
    // stderr is not a terminal here: no progress lines.
    assert.equal(r.stderr, '');
  });

  it('execute shows progress on stderr when it is a terminal, then the result', async () => {
    // python3's pty module gives the CLI a real terminal (no shell involved).
    const r = await new Promise<CliResult>((resolve) => {
      const p = spawn('/usr/bin/python3', ['-c', 'import pty, sys; pty.spawn(sys.argv[1:])', process.execPath, CLI_JS, '--socket', d.socketPath, 'execute', 'longmod', 'count', '--param', 'steps=6', '--param', 'ms=300'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.on('close', (status) => resolve({ status, stdout, stderr: '' }));
    });
    assert.equal(r.status, 0, r.stdout);
    /* eslint-disable no-control-regex -- the escape that clears the progress line is the point */
    assert.match(r.stdout, /\r\x1b\[Klongmod count: counting [0-9]+%/);
    // The progress line is cleared before the result, which is printed as for any action.
    assert.match(r.stdout, /\r\x1b\[K\{\r\n {2}"counted": 6,\r\n {2}"uid": 0\r\n\}\r\n$/);
    /* eslint-enable no-control-regex */
  });

  it('Ctrl-C during execute cancels the operation and ends with its outcome', async () => {
    const full = [CLI_JS, '--socket', d.socketPath, 'execute', 'longmod', 'loop'];
    // setpriv execs the CLI, so the pid is the CLI's own.
    const [file, argv] = asUser(users.tuxsec, process.execPath, full);
    const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', resolve));
    await waitFor(async () => (await root.operations()).some((o) => o.uid === users.tuxsec.uid && o.action === 'loop' && o.state === 'running'), 'the operation to run');
    p.kill('SIGINT');
    assert.equal(await closed, 1, stderr);
    assert.match(stderr, /^cancelling operation op-[0-9a-f]{32}\nError: operation op-[0-9a-f]{32} \(longmod loop\) was cancelled by uid \d+\n$/);
    assert.ok(!(await root.operations()).some((o) => o.state === 'running'), 'nothing left running');
  });

  it('an operation reports progress, then its result, to the uid that started it', async () => {
    const id = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'count', 'steps=40', 'ms=100');
    const c = new RootdClient({ socketPath: d.socketPath });
    try {
      // As root (any operation) the status shows the phase and a growing fraction.
      let seen: OperationInfo | null = null;
      await waitFor(async () => {
        seen = await statusOf(root, id);
        return seen.state !== 'running' || (seen.fraction ?? 0) > 0;
      }, 'progress');
      const s = seen! as OperationInfo;
      assert.equal(s.module, 'longmod');
      assert.equal(s.action, 'count');
      assert.equal(s.uid, users.tuxsec.uid);
      if (s.state === 'running') assert.equal(s.phase, 'counting');
      const res = await cli(d.socketPath, users.tuxsec, 'operation', 'result', id);
      // Still running at first: a clear error and exit 1; then the result.
      if (res.status !== 0) assert.match(res.stderr, /is still running/);
      await waitFor(async () => (await statusOf(root, id)).state !== 'running', 'the operation to finish');
      const done = await cli(d.socketPath, users.tuxsec, 'operation', 'result', id);
      assert.equal(done.status, 0, done.stderr);
      assert.deepEqual(JSON.parse(done.stdout), { counted: 40, uid: users.tuxsec.uid });
      const st = JSON.parse((await cli(d.socketPath, users.tuxsec, 'operation', 'status', id)).stdout) as OperationInfo;
      assert.equal(st.state, 'succeeded');
      assert.ok(st.finished_at && st.expires_at && Date.parse(st.expires_at) > Date.parse(st.finished_at));
      // operation list shows it to its owner.
      const list = JSON.parse((await cli(d.socketPath, users.tuxsec, 'operation', 'list')).stdout) as OperationInfo[];
      assert.ok(list.some((o) => o.id === id));
    } finally {
      c.close();
    }
  });

  it('another uid can neither see nor cancel an operation; root can', async () => {
    const id = await startNoWait(d.socketPath, users.member, 'longmod', 'loop');
    for (const sub of ['status', 'result', 'cancel']) {
      const r = await cli(d.socketPath, users.tuxsec, 'operation', sub, id);
      assert.equal(r.status, 1, `${sub}: ${r.stdout}`);
      assert.match(r.stderr, /^Error: operation "op-[0-9a-f]+" not found \(unknown, expired, or started by another user\)\n$/);
    }
    const theirs = JSON.parse((await cli(d.socketPath, users.tuxsec, 'operation', 'list')).stdout) as OperationInfo[];
    assert.ok(!theirs.some((o) => o.id === id), 'not listed to another uid');
    assert.equal((await statusOf(root, id)).state, 'running', 'still running after the refused cancel');
    const r = await cli(d.socketPath, null, 'operation', 'cancel', id);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as OperationInfo;
    assert.equal(s.state, 'cancelled');
    assert.match(s.error!, /cancelled by uid 0/);
    const res = await cli(d.socketPath, users.member, 'operation', 'result', id);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /^Error: operation op-[0-9a-f]+ \(longmod loop\) was cancelled by uid 0\n$/);
  });

  it('cancel ends the action and its whole process group (the grandchild is gone)', async () => {
    const secs = uniqueSleepSeconds();
    const id = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'sleeper', `seconds="${secs}"`);
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 1, 'the grandchild to start');
    const r = await cli(d.socketPath, users.tuxsec, 'operation', 'cancel', id);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as OperationInfo).state, 'cancelled');
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 0, 'the grandchild to be gone');
  });

  it('an operation past its timeout (rootd.yaml operation_timeout) ends timed_out, its children gone', async () => {
    const secs = uniqueSleepSeconds();
    const r = await cli(d.socketPath, users.tuxsec, 'execute', 'shortmod', 'sleeper', '--param', `seconds="${secs}"`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^Error: operation op-[0-9a-f]+ \(shortmod sleeper\) did not finish within 1 s\n$/);
    await waitFor(() => pidsWithCmdline(`sleep ${secs}`).length === 0, 'the grandchild to be gone');
    const list = await root.operations();
    const op = list.find((o) => o.module === 'shortmod' && o.action === 'sleeper');
    assert.equal(op?.state, 'timed_out');
    assert.equal(op?.timeout_seconds, 1);
  });

  it('an action that ignores its signal is ended after its timeout and a grace: its slots freed, its late result discarded', async () => {
    // member fills its max_operations_per_uid (2), tuxsec the last of max_operations (3).
    const deaf = [
      await startNoWait(d.socketPath, users.member, 'shortmod', 'deaf', 'ms=7000'),
      await startNoWait(d.socketPath, users.member, 'shortmod', 'deaf', 'ms=7000'),
      await startNoWait(d.socketPath, users.tuxsec, 'shortmod', 'deaf', 'ms=7000'),
    ];
    const full = await cli(d.socketPath, users.tuxsec, 'execute', '--no-wait', 'longmod', 'loop');
    assert.equal(full.status, 1);
    assert.match(full.stderr, /max_operations 3/);
    // 1 s timeout + 2 s grace, well before the actions return at 7 s. Timed on rootd's own clock,
    // from each operation's start: starting four CLI processes on a loaded machine takes seconds too.
    await waitFor(async () => (await Promise.all(deaf.map((id) => statusOf(root, id)))).every((o) => o.state !== 'running'), 'the deaf operations to end', 20_000);
    for (const id of deaf) {
      const st = await statusOf(root, id);
      assert.equal(st.state, 'timed_out');
      assert.equal(st.code, 'timeout');
      const ran = Date.parse(st.finished_at!) - Date.parse(st.started_at);
      assert.ok(ran >= 1000 && ran < 6000, `${id} ended ${ran} ms after it started`);
    }
    // Both limits are free again: member's per-uid slots and the overall ones.
    const again = await cli(d.socketPath, users.member, 'execute', 'longmod', 'count', '--param', 'steps=1', '--param', 'ms=0');
    assert.equal(again.status, 0, again.stderr);
    const other = await cli(d.socketPath, users.tuxsec, 'execute', 'longmod', 'count', '--param', 'steps=1', '--param', 'ms=0');
    assert.equal(other.status, 0, other.stderr);
    // The actions return at 7 s: their result is discarded, logged, and the operations stay timed out.
    await waitFor(() => (d.log().match(/returned late; its result is discarded/g) ?? []).length >= 3, 'the late returns to be logged', 10_000);
    for (const id of deaf) {
      const r = await cli(d.socketPath, null, 'operation', 'result', id);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^Error: operation op-[0-9a-f]+ \(shortmod deaf\) did not finish within 1 s\n$/);
    }
  });

  it('a long operation blocks no other request: get_hostname on other connections answers promptly', async () => {
    const id = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'loop');
    try {
      const c = new RootdClient({ socketPath: d.socketPath, timeoutMs: 10_000 });
      try {
        // max_concurrent_actions is 1: had the operation taken that slot, these would all time out.
        const answers = await Promise.all(Array.from({ length: 20 }, () => c.execute('systeminfo', 'get_hostname')));
        for (const a of answers) assert.equal(typeof (a as { hostname: unknown }).hostname, 'string');
      } finally {
        c.close();
      }
      const r = await cli(d.socketPath, users.member, 'execute', 'systeminfo', 'get_hostname');
      assert.equal(r.status, 0, r.stderr);
      assert.equal((await statusOf(root, id)).state, 'running');
    } finally {
      await root.operationCancel(id);
    }
  });

  it('operations are bounded per uid and overall (root neither counted nor refused), refused as rate-limited with the limit named', async () => {
    const mine = [await startNoWait(d.socketPath, users.member, 'longmod', 'loop'), await startNoWait(d.socketPath, users.member, 'longmod', 'loop')];
    const ids = [...mine];
    try {
      const third = await cli(d.socketPath, users.member, 'execute', 'longmod', 'loop', '--no-wait');
      assert.equal(third.status, 1);
      assert.match(third.stderr, /^Error: cannot start longmod loop: uid \d+ has 2 operations running \(max_operations_per_uid 2\); wait for one to finish or cancel it\n$/);
      ids.push(await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'loop'));
      const full = await cli(d.socketPath, users.tuxsec, 'execute', 'longmod', 'loop', '--no-wait');
      assert.equal(full.status, 1);
      assert.match(full.stderr, /^Error: cannot start longmod loop: 3 operations are running \(max_operations 3\); retry later\n$/);
      // Root is not locked out by users filling max_operations, and its operations take no user's slot.
      ids.push(await startNoWait(d.socketPath, null, 'longmod', 'loop'));
      const second = await root.start('longmod', 'loop');
      assert.ok('operation' in second, JSON.stringify(second));
      ids.push(second.operation.id);
      const still = await cli(d.socketPath, users.tuxsec, 'execute', 'longmod', 'loop', '--no-wait');
      assert.match(still.stderr, /^Error: cannot start longmod loop: 3 operations are running \(max_operations 3\); retry later\n$/);
    } finally {
      for (const id of ids) await root.operationCancel(id);
    }
    // Freed: the member may start one again.
    const again = await startNoWait(d.socketPath, users.member, 'longmod', 'loop');
    await root.operationCancel(again);
  });

  it('a client that knows nothing of operations gets a clear answer: the id and what to do with it', async () => {
    const res = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'py-1', data: { module: 'longmod', action: 'count', parameters: { steps: 1, ms: 0 } } }));
    assert.equal(res.type, 'success');
    assert.equal(res.request_id, 'py-1');
    const data = res.data as { success: boolean; data: { operation_id: string; state: string; message: string }; operation: OperationInfo };
    assert.equal(data.success, true);
    assert.match(data.data.operation_id, /^op-[0-9a-f]{32}$/);
    assert.equal(data.data.state, 'running');
    assert.match(data.data.message, /^longmod count is long-running: it was started as operation op-[0-9a-f]+ and runs in the background; follow it with operation_status/);
    assert.equal(data.operation.id, data.data.operation_id);
    await waitFor(async () => (await statusOf(root, data.data.operation_id)).state === 'succeeded', 'the operation to finish');
    // operation_result answers in execute_command's shape.
    const r = await oneShot(d.socketPath, JSON.stringify({ type: 'operation_result', request_id: 'py-2', data: { operation_id: data.data.operation_id } }));
    assert.deepEqual((r.data as { success: boolean; data: unknown }).data, { counted: 1, uid: 0 });
  });

  it('operation requests refuse a malformed id, naming it', async () => {
    const r = await cli(d.socketPath, users.tuxsec, 'operation', 'status', '../../etc/passwd');
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'Error: cannot find operation: invalid operation_id "../../etc/passwd": "op-" and 32 hexadecimal digits\n');
    const u = await cli(d.socketPath, users.tuxsec, 'operation', 'frobnicate');
    assert.equal(u.status, 2);
  });

  it('module_info marks long-running actions with their timeout', async () => {
    const info = await root.moduleInfo('longmod');
    const loop = info.capabilities.find((c) => c.name === 'loop');
    assert.deepEqual(loop?.long_running, { timeout_seconds: 600 });
    assert.equal(info.capabilities.find((c) => c.name === 'count')?.access, 'read');
  });
});

describe('rootd operations: result expiry and restart', () => {
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  let plugins: string;
  let state: string;
  before(async () => {
    users = await ensureTestUsers();
    plugins = pluginDir();
    writeLongRunningPlugin(plugins, 'longmod');
    state = mkdtempSync(path.join(tmpdir(), 'tso-'));
  });
  after(() => rmSync(state, { recursive: true, force: true }));

  const config = (ttl: number) => ({
    plugins_dir: plugins,
    allowed_users: [users.tuxsec.name],
    operation_result_ttl: ttl,
    operations_file: path.join(state, 'lib', 'operations.json'),
    modules: { firewalld: { enabled: false } },
  });

  it('a finished operation is forgotten after operation_result_ttl', async () => {
    const d = await startRootd({ config: config(2) });
    try {
      const id = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'count', 'steps=1', 'ms=0');
      const c = new RootdClient({ socketPath: d.socketPath });
      try {
        await waitFor(async () => (await c.operationStatus(id)).state === 'succeeded', 'the operation to finish');
        await waitFor(
          () => c.operationStatus(id).then(() => false, (e: Error & { code?: string }) => e.code === 'not-found'),
          'the result to expire',
        );
        await assert.rejects(c.operationResult(id), /not found/);
      } finally {
        c.close();
      }
    } finally {
      await d.stop();
    }
  });

  it('a restarted rootd reports operations that were running as interrupted (crash and clean stop)', async () => {
    const file = path.join(state, 'lib', 'operations.json');
    let d = await startRootd({ config: config(3600) });
    const crashed = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'loop');
    const finished = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'count', 'steps=1', 'ms=0');
    await waitFor(async () => (await d.client.operationStatus(finished)).state === 'succeeded', 'the short one to finish');
    // The record is root's alone and holds no parameters or results.
    const st = statSync(file);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /counted/);
    // A crash: nothing gets to record what became of the loop.
    d.signal('SIGKILL');
    await d.stop();
    assert.ok(existsSync(file));
    d = await startRootd({ config: config(3600) });
    try {
      const r = await cli(d.socketPath, users.tuxsec, 'operation', 'status', crashed);
      assert.equal(r.status, 0, r.stderr);
      const s = JSON.parse(r.stdout) as OperationInfo;
      assert.equal(s.state, 'interrupted');
      assert.match(s.error!, /tuxsec-rootd stopped while it ran/);
      const res = await cli(d.socketPath, users.tuxsec, 'operation', 'result', crashed);
      assert.equal(res.status, 1);
      assert.match(res.stderr, /was interrupted: tuxsec-rootd stopped while it ran/);
      // The finished one keeps its state; its result was not kept, and that is said.
      const fin = await cli(d.socketPath, users.tuxsec, 'operation', 'result', finished);
      assert.equal(fin.status, 1);
      assert.match(fin.stderr, /succeeded, but its result was lost when tuxsec-rootd restarted/);
      // A clean stop records a running operation as interrupted itself.
      const running = await startNoWait(d.socketPath, users.tuxsec, 'longmod', 'loop');
      await d.stop();
      const recorded = (JSON.parse(readFileSync(file, 'utf8')) as { operations: OperationInfo[] }).operations.find((o) => o.id === running);
      assert.equal(recorded?.state, 'interrupted');
      assert.match(recorded!.error!, /tuxsec-rootd is stopping/);
      d = await startRootd({ config: config(3600) });
      assert.equal((await d.client.operationStatus(running)).state, 'interrupted');
    } finally {
      await d.stop();
    }
  });

  it('kept results have a byte budget per uid (operation_result_max_bytes): the oldest go first, never another uid\'s', async () => {
    const d = await startRootd({ config: { ...config(3600), allowed_users: [users.tuxsec.name, users.member.name], operation_result_max_bytes: 10_000 } });
    const finished = async (user: typeof users.tuxsec, pad: number) => {
      const id = await startNoWait(d.socketPath, user, 'longmod', 'count', 'steps=1', 'ms=0', `pad=${pad}`);
      await waitFor(async () => (await d.client.operationStatus(id)).state === 'succeeded', 'the operation to finish');
      return id;
    };
    const result = (user: typeof users.tuxsec, id: string) => cli(d.socketPath, user, 'operation', 'result', id);
    try {
      const theirs = await finished(users.member, 4000);
      const mine = [await finished(users.tuxsec, 4000), await finished(users.tuxsec, 4000), await finished(users.tuxsec, 4000)];
      // About 12,000 bytes of tuxsec's results: the oldest went.
      const first = await result(users.tuxsec, mine[0]!);
      assert.equal(first.status, 1);
      assert.match(first.stderr, /^Error: operation op-[0-9a-f]{32} \(longmod count\) succeeded, but its result \(\d+ bytes\) was dropped to keep uid \d+'s kept results within operation_result_max_bytes 10000\n$/);
      for (const id of mine.slice(1)) {
        const r = await result(users.tuxsec, id);
        assert.equal(r.status, 0, r.stderr);
        assert.equal((JSON.parse(r.stdout) as { pad: string }).pad.length, 4000);
      }
      // Another uid filling its budget evicts nothing of member's.
      const r = await result(users.member, theirs);
      assert.equal(r.status, 0, r.stderr);
      // A result larger than the whole budget is not kept; the operation says so.
      const huge = await finished(users.tuxsec, 20_000);
      const h = await result(users.tuxsec, huge);
      assert.equal(h.status, 1);
      assert.match(h.stderr, /its result \(\d+ bytes\) was dropped to keep uid \d+'s kept results within operation_result_max_bytes 10000/);
      // Dropping the big one left the two before it.
      assert.equal((await result(users.tuxsec, mine[2]!)).status, 0);
    } finally {
      await d.stop();
    }
  });

  it('operations_file is not read when it is a symbolic link, another user\'s, group-writable or oversized', async () => {
    const id = `op-${'ab'.repeat(16)}`;
    const record = JSON.stringify({
      version: 1,
      operations: [
        { id, module: 'longmod', action: 'loop', uid: users.tuxsec.uid, state: 'running', phase: null, fraction: null, timeout_seconds: 600, started_at: new Date().toISOString(), finished_at: null, expires_at: null, access: 'write' },
      ],
    });
    const cases: Array<[string, (file: string) => void, RegExp]> = [
      ['a symbolic link', (file) => {
        writeFileSync(`${file}.real`, record, { mode: 0o600 });
        symlinkSync(`${file}.real`, file);
      }, /is a symbolic link/],
      ['owned by another user', (file) => {
        writeFileSync(file, record, { mode: 0o600 });
        chownSync(file, users.tuxsec.uid, users.tuxsec.gid);
      }, /is owned by uid \d+/],
      ['group-writable', (file) => {
        writeFileSync(file, record);
        chmodSync(file, 0o620);
      }, /is writable by group or others/],
      ['oversized', (file) => writeFileSync(file, record + ' '.repeat(17 * 1024 * 1024), { mode: 0o600 }), /is larger than \d+ bytes/],
      ['as it should be', (file) => writeFileSync(file, record, { mode: 0o600 }), /^$/],
    ];
    for (const [what, make, why] of cases) {
      const dir = mkdtempSync(path.join(state, 'of-'));
      const file = path.join(dir, 'operations.json');
      make(file);
      const d = await startRootd({ config: { ...config(3600), operations_file: file } });
      try {
        const st = await d.client.operationStatus(id).then((o) => o.state, (e: Error) => e.message);
        if (what === 'as it should be') {
          assert.equal(st, 'interrupted', what);
          continue;
        }
        assert.match(st, /not found/, what);
        assert.match(d.log(), /cannot read operations_file/, what);
        assert.match(d.log(), why, what);
      } finally {
        await d.stop();
      }
    }
  });
});
