// The pull loop against a server whose replies break the protocol: checked, not cast
// (src/protocol/jobs.ts). HTTP is a recorder; the executor, journal and outbox are real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Executor } from '../../../src/agent/executor.ts';
import type { HttpResponse } from '../../../src/agent/http.ts';
import { Journal } from '../../../src/agent/journal.ts';
import { Outbox } from '../../../src/agent/outbox.ts';
import { PullLoop } from '../../../src/agent/pull.ts';

const job = (id: string) => ({ id, module: 'systeminfo', action: 'get_hostname', params: {} });

test('PullLoop treats a check-in reply that breaks the protocol as a failed check-in: nothing run, no result dropped', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsa-replies-'));
  try {
    const journal = Journal.open(dir);
    const outbox = Outbox.open(dir, { maxEntries: 100, maxBytes: 1 << 20 });
    const ran: string[] = [];
    const executor = new Executor({ rootd: { execute: async (_m, a) => (ran.push(a), {}) }, journal, sink: (r) => outbox.add(r) });
    await executor.run(job('pending'));
    assert.equal(outbox.size, 1);
    const answers: Array<Record<string, unknown>> = [
      // "acknowledged" not a list: once read as an original server's 200, which drops every result sent.
      { success: true, commands: [job('a')], acknowledged: 'all' },
      { success: true, commands: [job('b')], sync_interval: '30' },
      { success: true, commands: 'run everything' },
    ];
    const logs: string[] = [];
    const http = {
      async post(): Promise<HttpResponse> {
        return { status: 200, body: answers.shift()!, retryAfter: null };
      },
    };
    const log = { debug: () => {}, info: () => {}, warn: (_o: object, m: string) => void logs.push(m), error: (_o: object, m: string) => void logs.push(m) };
    const loop = new PullLoop({ agentId: 'x', apiKey: 'k', pollInterval: 5 }, { http, executor, outbox, log, sleep: async () => {} });
    const signal = new AbortController().signal;
    for (let i = 0; i < 3; i++) await loop.step(signal);
    assert.deepEqual(ran, ['get_hostname'], 'only the job run before the bad replies');
    assert.equal(outbox.size, 1, 'the pending result is still there to send again');
    assert.equal(loop.failures, 3);
    assert.match(logs[0]!, /^cannot check in: cannot read answer of \/agents\/api\/checkin\/: "acknowledged": expected array, got "all"/);
    assert.match(logs[1]!, /"sync_interval": expected number, got "30"/);
    assert.match(logs[2]!, /"commands": expected array, got "run everything"/);
    journal.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
