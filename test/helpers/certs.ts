/**
 * Test certificates made with the system openssl: a CA, a server certificate for the given
 * hosts (DNS names or IP addresses) and a client certificate, all signed by that CA.
 * Call twice with different dirs to get an unrelated CA ("unknown CA" tests).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { run } from '../../src/os/exec.ts';

export interface CertPaths {
  /** CA certificate (PEM): the trust anchor for both sides. */
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface MakeCertsOptions {
  /** Names the server certificate is valid for. Default `['127.0.0.1', 'localhost']`. */
  hosts?: string[];
  /** Make the server and client certificates already expired (notAfter in the past). */
  expired?: boolean;
  /** Days the server and client certificates are valid (default 30); the CA then lasts ten years. */
  days?: number;
  /** Common name of the CA, so two CAs are told apart in logs. Default `tuxsec-test-ca`. */
  caName?: string;
}

const OPENSSL = '/usr/bin/openssl';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run(OPENSSL, args, { cwd, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`cannot run openssl ${args[0]}: ${r.stderr.trim()}`);
}

/** Creates the certificates in `dir` (created if missing) and returns their paths. */
export async function makeCerts(dir: string, opts: MakeCertsOptions = {}): Promise<CertPaths> {
  mkdirSync(dir, { recursive: true });
  const hosts = opts.hosts ?? ['127.0.0.1', 'localhost'];
  const p = (f: string): string => path.join(dir, f);
  const days = opts.expired ? '-1' : String(opts.days ?? 30);
  const caDays = opts.days === undefined ? '30' : '3650';
  await openssl(
    ['req', '-x509', ...EC, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', caDays,
      '-subj', `/CN=${opts.caName ?? 'tuxsec-test-ca'}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  writeFileSync(p('server.ext'), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  writeFileSync(p('client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client'] as const) {
    await openssl(['req', '-new', ...EC, '-keyout', p(`${who}.key`), '-out', p(`${who}.csr`),
      '-subj', `/CN=${who === 'server' ? hosts[0] ?? 'server' : 'tuxsec-test-client'}`], dir);
    await openssl(['x509', '-req', '-in', p(`${who}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
      '-CAcreateserial', '-out', p(`${who}.pem`), '-days', days, '-extfile', p(`${who}.ext`)], dir);
  }
  return {
    ca: p('ca.pem'),
    caKey: p('ca.key'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
  };
}
