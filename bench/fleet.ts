/**
 * The fleet pages' requests with 2,000 agents: a real tuxsec-server process (TLS, SQLite on disk),
 * agents enrolled over the real registration endpoint with labelled tokens, a batch to every host
 * and some jobs; then the dashboard, agent-list pages and filters and the batch view, each asked N
 * times over one keep-alive connection. Prints a markdown table of the server's own time (Fastify's
 * responseTime from its log) and the client's wall time, median and p90, and the reply size.
 *
 *   npm run build && node --import tsx bench/fleet.ts [agents] [calls]
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Agent, request } from 'undici';
import { SimAgent, startServer } from '../test/helpers/server.ts';

const AGENTS = Number(process.argv[2] ?? 2000);
const CALLS = Number(process.argv[3] ?? 30);

const srv = await startServer({ config: { log_level: 'info', register_rate_limit: 1_000_000, batch_max_hosts: 100_000, sync_interval: 30 } });
try {
  const ca = readFileSync(srv.certs.ca);
  const dispatcher = new Agent({ connect: { ca }, connections: 1, keepAliveTimeout: 60_000 });
  const call = async (method: 'GET' | 'POST', p: string, body?: unknown) => {
    const res = await request(`${srv.url}/api/v1${p}`, {
      method,
      dispatcher,
      headers: { authorization: `Bearer ${srv.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${p}: ${res.statusCode} ${text.slice(0, 300)}`);
    return { text, json: JSON.parse(text) as Record<string, unknown> };
  };

  // Enrollment: four groups of labels, through the real registration endpoint, 16 at a time.
  const groups = [
    { env: 'prod', role: 'web' },
    { env: 'prod', role: 'db' },
    { env: 'dev', role: 'web' },
    { env: 'dev', role: 'cache' },
  ];
  const tokens: string[] = [];
  for (const labels of groups) tokens.push(String((await call('POST', '/tokens', { uses: AGENTS, labels, name: `${labels.env} ${labels.role}` })).json.token));
  const t0 = performance.now();
  const sims: SimAgent[] = [];
  for (let i = 0; i < 16; i++) sims.push(new SimAgent(srv.url, ca, { connections: 1 }));
  let next = 0;
  const ids: string[] = [];
  await Promise.all(
    sims.map(async (s) => {
      for (let i = next++; i < AGENTS; i = next++) {
        const r = await s.register({
          hostname: `host-${String(i).padStart(5, '0')}`,
          ip_address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
          machine_id: `machine-${i}`,
          enrollment_token: tokens[i % tokens.length],
          os_info: { system: 'Linux', release: '6.1.0-18-amd64', version: '#1 SMP Debian 6.1.76-1', machine: 'x86_64', distro: i % 3 ? 'debian' : 'rocky' },
        });
        if (r.status !== 200) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
        ids.push(String(r.body.agent_id));
      }
    }),
  );
  await Promise.all(sims.map((s) => s.close()));
  const enrollMs = performance.now() - t0;
  // Jobs: a batch to every host, and a few single ones.
  let t = performance.now();
  const big = (await call('POST', '/batches', { target: { label: { env: 'prod' } }, module: 'systeminfo', action: 'get_info' })).json.batch as { id: string };
  const labelBatchMs = performance.now() - t;
  t = performance.now();
  const all = (await call('POST', '/batches', { target: { agents: ids }, module: 'systeminfo', action: 'get_hostname' })).json.batch as { id: string };
  const selectionBatchMs = performance.now() - t;
  await call('POST', `/batches/${all.id}/cancel`);
  for (let i = 0; i < 200; i++) await call('POST', '/jobs', { agent_id: ids[i]!, module: 'systeminfo', action: 'get_uptime' });

  const requests: Array<[string, string]> = [
    ['dashboard', '/dashboard'],
    ['agent list, first page (100)', '/agents?limit=100'],
    ['agent list, page 15 (100)', '/agents?limit=100&offset=1400'],
    ['agent list, all (1000 a page)', '/agents?limit=1000'],
    ['agents: label env=prod & role=web', '/agents?label=env=prod&label=role=web&limit=100'],
    ['agents: state online', '/agents?state=online&limit=100'],
    ['agents: search "host-019"', '/agents?q=host-019&limit=100'],
    ['agents: os rocky, mode pull', '/agents?os=rocky&mode=pull&limit=100'],
    [`batch view (${AGENTS / 2} hosts)`, `/batches/${big.id}`],
    ['batch list', '/batches'],
  ];
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const rows: string[] = [];
  for (const [name, p] of requests) {
    const wall: number[] = [];
    let bytes = 0;
    const logFrom = srv.log().length;
    for (let i = 0; i < CALLS + 1; i++) {
      const t = performance.now();
      const r = await call('GET', p);
      if (i === 0) continue; // statement preparation, page cache
      wall.push(performance.now() - t);
      bytes = r.text.length;
    }
    // Fastify's own measure: from the request's arrival to the reply's end.
    await new Promise((r) => setTimeout(r, 200));
    const server = srv
      .log()
      .slice(logFrom)
      .split('\n')
      .filter((l) => l.includes('"responseTime"'))
      .map((l) => JSON.parse(l) as { responseTime: number })
      .map((l) => l.responseTime)
      .slice(1);
    rows.push(`| ${name} | ${pct(server, 50).toFixed(1)} | ${pct(server, 90).toFixed(1)} | ${pct(wall, 50).toFixed(1)} | ${pct(wall, 90).toFixed(1)} | ${(bytes / 1024).toFixed(0)} |`);
  }
  await dispatcher.close();
  console.log(`## fleet requests with ${AGENTS} agents: ${CALLS} calls each, one after another, one keep-alive TLS connection\n`);
  console.log('| request | server p50 ms | server p90 ms | client p50 ms | client p90 ms | reply KiB |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
  console.log(
    `\nCreating a batch: for a label matching ${AGENTS / 2} hosts ${labelBatchMs.toFixed(0)} ms, for a selection of all ${AGENTS} ${selectionBatchMs.toFixed(0)} ms (client time, reply included).\n` +
    `\n(${AGENTS} agents enrolled in ${(enrollMs / 1000).toFixed(1)} s over HTTPS; ${AGENTS / 2 + AGENTS + 200} jobs, the ${AGENTS}-host batch cancelled; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? `set (${process.env.NODE_EXTRA_CA_CERTS})` : 'not set'} in the server's environment; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)`,
  );
} finally {
  await srv.stop();
  srv.cleanup();
}
