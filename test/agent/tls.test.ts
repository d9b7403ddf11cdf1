// The agent refuses a server certificate from an unknown CA, an expired one, one for another host,
// and (without ca_cert) one the system store does not trust: no request ever reaches the server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { certsIn, makeAgentEnv, registerAgent, startAgent, tempDir, until, type AgentEnv } from './harness.ts';
import { startOriginalServer } from './original-server.ts';
import type { CertPaths } from '../helpers/certs.ts';

let dir: string;
let good: CertPaths;
const envs: AgentEnv[] = [];

before(async () => {
  dir = tempDir('tsa-tls-');
  good = await certsIn(path.join(dir, 'good'));
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

const CASES: Array<{ name: string; certs: () => Promise<CertPaths>; trust: (c: CertPaths) => string | null; why: RegExp }> = [
  { name: 'from an unknown CA', certs: () => certsIn(path.join(dir, 'other-ca'), { caName: 'someone-else' }), trust: () => good.ca, why: /not signed by a trusted CA|untrusted CA|self-signed/ },
  { name: 'that has expired', certs: () => certsIn(path.join(dir, 'expired'), { expired: true }), trust: (c) => c.ca, why: /has expired/ },
  { name: 'for another host', certs: () => certsIn(path.join(dir, 'other-host'), { hosts: ['other.example.com'] }), trust: (c) => c.ca, why: /for another host/ },
  { name: 'not in the system store when ca_cert is unset', certs: async () => good, trust: () => null, why: /trusted CA|untrusted CA|self-signed/ },
];

for (const c of CASES) {
  test(`tuxsec-agent refuses a server certificate ${c.name}`, async () => {
    const certs = await c.certs();
    const server = await startOriginalServer({ cert: certs.serverCert, key: certs.serverKey });
    const env = await makeAgentEnv({ ca_cert: c.trust(certs) });
    envs.push(env);
    try {
      const reg = await registerAgent(env, server.url);
      assert.notEqual(reg.code, 0);
      assert.match(reg.stderr, c.why);
      // With credentials in place, the running agent refuses the same server.
      const text = fs.readFileSync(env.configPath, 'utf8');
      fs.writeFileSync(env.configPath, text + YAML.stringify({ server_url: server.url, agent_id: 'a1', api_key: 'k1' }));
      const agent = startAgent(env);
      try {
        await until('the refusal in the log', () => /cannot check in: cannot reach/.test(agent.out()), 10_000);
        assert.match(agent.out(), c.why);
      } finally {
        await agent.kill();
      }
      assert.equal(server.requests, 0, 'no HTTP request got through');
    } finally {
      await server.close();
    }
  });
}
