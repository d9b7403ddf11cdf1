/**
 * endpointOf for ssh mode makes the SSH transport's own checks: an endpoint the server stores is
 * one the transport takes, never one refused later at each delivery.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { EndpointError, endpointOf } from '../../../src/server/delivery/endpoint.ts';
import { SshTransport } from '../../../src/server/delivery/ssh.ts';
import type { SshEndpoint } from '../../../src/server/delivery/transport.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-endpoint-'));
const identity = path.join(dir, 'id');
fs.writeFileSync(identity, 'not used\n', { mode: 0o600 });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('endpointOf refuses an ssh endpoint the SSH transport would refuse, naming what is wrong', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ host: '[::1]', known_host: `[::1]:22 ${KEY}` }, /cannot use SSH host "\[::1\]": expected a host name or an IP address \(an IPv6 address without brackets\)/],
    [{ host: 'h', known_host: `@cert-authority *.example.com ${KEY}` }, /cannot pin host key .*markers \("@cert-authority"\) are not accepted/],
    [{ host: 'h', known_host: 'h ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA' }, /the base64 key is not a ssh-rsa key/],
  ];
  for (const [input, re] of cases) {
    assert.throws(
      () => endpointOf({ mode: 'ssh', ...input }),
      (e: unknown) => e instanceof EndpointError && re.test(e.message),
      JSON.stringify(input),
    );
  }
});

test('what endpointOf stores, the SSH transport takes', async () => {
  for (const input of [
    { host: '::1', known_host: `[::1]:2222 ${KEY}` },
    { host: 'agent-1.example.com', known_host: `agent-1.example.com ${KEY} comment` },
    { host: '192.0.2.7', known_host: `192.0.2.7 ${KEY}` },
  ]) {
    const ep = endpointOf({ mode: 'ssh', ...input }) as SshEndpoint;
    const t = new SshTransport(ep, { identityFile: identity, stateDir: path.join(dir, 'state') });
    await t.close();
  }
});
