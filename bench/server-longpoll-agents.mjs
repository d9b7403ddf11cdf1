// Worker thread of bench/server-longpoll.ts: runs a share of the simulated long-polling agents,
// reports when commands arrive and when their results are acknowledged (epoch ms, sub-ms).
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { Agent, request } from 'undici';

const { url, ca, creds, wait, rampMs, features } = workerData;
const pool = new Agent({ connect: { ca }, connections: creds.length + 50, keepAliveTimeout: 120_000, pipelining: 1 });
const now = () => performance.timeOrigin + performance.now();
let stopping = false;
let connected = 0;
let checkins = 0;
const errors = {};
pool.on('connect', () => connected++);
pool.on('disconnect', () => connected--);
parentPort.on('message', (m) => {
  if (m === 'stop') stopping = true;
});
setInterval(() => parentPort.postMessage({ type: 'stats', connected, checkins, errors }), 500).unref();

async function post(path, body, key) {
  const res = await request(`${url}${path}`, {
    method: 'POST',
    dispatcher: pool,
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify(body),
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  return { status: res.statusCode, body: await res.body.json() };
}

function fail(k) {
  errors[k] = (errors[k] ?? 0) + 1;
}

async function agent(c, delay) {
  await sleep(delay);
  while (!stopping) {
    let r;
    try {
      r = await post('/agents/api/checkin/', { agent_id: c.id, api_key: c.key, status: 'online', wait, features }, c.key);
      checkins++;
    } catch (e) {
      fail(`${e.code ?? ''} ${e.message}`);
      await sleep(200 + Math.random() * 800);
      continue;
    }
    if (r.status !== 200) {
      fail(`HTTP ${r.status} ${r.body.code}`);
      await sleep(1000);
      continue;
    }
    if (r.body.commands.length === 0) continue;
    parentPort.postMessage({ type: 'received', t: now(), tags: r.body.commands.map((x) => x.params.tag) });
    const results = r.body.commands.map((x) => ({ command_id: x.id, success: true, output: { ok: true } }));
    for (;;) {
      try {
        const ack = await post('/agents/api/results/', { agent_id: c.id, api_key: c.key, command_results: results }, c.key);
        const tagOf = new Map(r.body.commands.map((x) => [x.id, x.params.tag]));
        parentPort.postMessage({ type: 'stored', t: now(), tags: ack.body.acknowledged.map((id) => tagOf.get(id)) });
        break;
      } catch (e) {
        fail(`results: ${e.code ?? ''} ${e.message}`);
        await sleep(500);
      }
    }
  }
}

await Promise.allSettled(creds.map((c, i) => agent(c, (i / creds.length) * rampMs)));
await pool.close();
parentPort.postMessage({ type: 'done' });
