/**
 * The network half of `tuxsec-cli doctor`: the agent's certificates (present, valid, matching
 * their key, not about to expire), the server reached over verified TLS, and this host's clock
 * against the server's.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { HttpClient } from '../agent/http.ts';
import type { AgentConfig } from '../agent/config.ts';
import { fail, pass, skip, unreadable, type Check } from './doctor-report.ts';

const DAY_MS = 86_400_000;
/** A certificate closer than this to its end is reported, while there is time to renew it. */
export const EXPIRY_WARNING_DAYS = 30;
/**
 * NTP keeps clocks within a second of each other; a minute off means no time sync at all, and
 * then a certificate just issued looks not yet valid and logs disagree with the server's.
 */
export const MAX_CLOCK_SKEW_S = 60;
const SERVER_TIMEOUT_MS = 5000;

const RESTART = 'then sudo systemctl restart tuxsec-agent';

/** The certificate's dates against `now`: null when it is valid for longer than the warning. */
export function validityProblem(cert: X509Certificate, now: Date): string | null {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (from.getTime() > now.getTime()) return `not valid until ${from.toISOString()} (is this host's clock right?)`;
  const left = to.getTime() - now.getTime();
  if (left <= 0) return `expired on ${to.toISOString()}`;
  if (left < EXPIRY_WARNING_DAYS * DAY_MS) return `expires on ${to.toISOString()}, in ${Math.floor(left / DAY_MS)} days`;
  return null;
}

function readCert(name: string, file: string): X509Certificate | Check {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return unreadable(name, file);
    return fail(name, `${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`, `put the certificate at ${file} or change ${name} in agent.yaml; ${RESTART}`);
  }
  try {
    return new X509Certificate(pem);
  } catch (e) {
    return fail(name, `${file}: not a PEM certificate (${(e as Error).message})`, `put the certificate (PEM) at ${file}; ${RESTART}`);
  }
}

function certCheck(name: string, file: string, now: Date): { check: Check; cert: X509Certificate | null } {
  const cert = readCert(name, file);
  if (!(cert instanceof X509Certificate)) return { check: cert, cert: null };
  const problem = validityProblem(cert, now);
  const until = new Date(cert.validTo).toISOString();
  if (problem) return { check: fail(name, `${file}: ${problem}`, `renew it: put a new certificate at ${file}; ${RESTART}`), cert };
  return { check: pass(name, `${file}: valid until ${until}`), cert };
}

/** ssl_key: the agent's rules (0600, not readable by group or others) and the key of ssl_cert. */
function keyCheck(file: string, cert: X509Certificate | null): Check {
  const name = 'ssl_key';
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return unreadable(name, file);
    return fail(name, `${file}: ${code === 'ENOENT' ? 'no such file' : code}`, `put the key of ssl_cert at ${file} (0600 tuxsec:tuxsec); ${RESTART}`);
  }
  if (st.mode & 0o077) {
    const mode = `0${(st.mode & 0o777).toString(8)}`;
    return fail(name, `${file}: mode ${mode} lets group or others read the private key (the agent refuses it)`, `sudo chown tuxsec:tuxsec ${file} && sudo chmod 0600 ${file}`);
  }
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES') return unreadable(name, file);
    throw e;
  }
  if (!cert) return skip(name, 'ssl_cert could not be read, so the key cannot be compared with it');
  try {
    if (!cert.checkPrivateKey(createPrivateKey(pem))) {
      return fail(name, `${file} is not the key of the certificate in ssl_cert`, `put ssl_cert's own key at ${file}, or the certificate issued for this key in ssl_cert; ${RESTART}`);
    }
  } catch (e) {
    return fail(name, `${file}: not a private key the certificate can be checked against (${(e as Error).message})`, `put ssl_cert's own key (PEM) at ${file}; ${RESTART}`);
  }
  return pass(name, `${file}: the key of ssl_cert, mode 0${(st.mode & 0o777).toString(8)}`);
}

/** ca_cert, ssl_cert and ssl_key as agent.yaml names them. */
export function certificateChecks(cfg: AgentConfig, now: Date): Check[] {
  const out: Check[] = [];
  if (cfg.ca_cert === null) out.push(pass('ca_cert', "not set: the system's CAs are trusted"));
  else out.push(certCheck('ca_cert', cfg.ca_cert, now).check);
  if (cfg.ssl_cert === null || cfg.ssl_key === null) {
    out.push(pass('ssl_cert', 'not set: no client certificate'));
    return out;
  }
  const { check, cert } = certCheck('ssl_cert', cfg.ssl_cert, now);
  out.push(check, keyCheck(cfg.ssl_key, cert));
  return out;
}

/**
 * Seconds the server's clock is ahead of ours (negative: behind), from an HTTP Date header
 * stamped between `sentAt` and `receivedAt` (ms). The header counts whole seconds, so it is
 * read as the middle of its second and compared with the middle of the exchange.
 */
export function clockSkew(dateHeader: string | undefined, sentAt: number, receivedAt: number): number | null {
  if (!dateHeader) return null;
  const t = Date.parse(dateHeader);
  if (Number.isNaN(t)) return null;
  return (t + 500 - (sentAt + receivedAt) / 2) / 1000;
}

/** The clock check of a skew in seconds. */
export function clockCheck(skew: number): Check {
  const s = Math.abs(skew).toFixed(1);
  const text = skew >= 0 ? `this host's clock is ${s} s behind the server's` : `this host's clock is ${s} s ahead of the server's`;
  if (Math.abs(skew) > MAX_CLOCK_SKEW_S) {
    return fail('clock', `${text} (more than ${MAX_CLOCK_SKEW_S} s)`, 'turn on time sync: sudo timedatectl set-ntp true (systemd-timesyncd or chrony), on the server too');
  }
  return pass('clock', `${text} (from the Date header of the server's answer)`);
}

/** Whether a file can be read by this user: the client certificate is sent only if so. */
function readable(file: string | null): file is string {
  if (file === null) return false;
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * server: a GET of server_url with no credentials (the api_key is the agent's alone), over TLS
 * verified as the agent verifies it. clock: the Date header of that answer, which any answer
 * carries, so no credentials are needed for it either.
 */
export async function serverChecks(cfg: AgentConfig, now: () => number = Date.now): Promise<Check[]> {
  if (cfg.server_url === null) return [skip('server', 'no server_url in agent.yaml'), skip('clock', 'no server to compare with')];
  if (cfg.ca_cert !== null && !readable(cfg.ca_cert)) {
    return [skip('server', `ca_cert ${cfg.ca_cert} cannot be read (see ca_cert), so the server cannot be verified as the agent does`), skip('clock', 'the server was not asked')];
  }
  const withCert = readable(cfg.ssl_cert) && readable(cfg.ssl_key);
  let client: HttpClient;
  try {
    client = new HttpClient({
      serverUrl: cfg.server_url,
      caCert: cfg.ca_cert,
      sslCert: withCert ? cfg.ssl_cert : null,
      sslKey: withCert ? cfg.ssl_key : null,
      connectTimeoutMs: SERVER_TIMEOUT_MS,
    });
  } catch (e) {
    return [fail('server', (e as Error).message, 'set server_url in agent.yaml to the https:// address of tuxsec-server'), skip('clock', 'no server to compare with')];
  }
  const sentAt = now();
  try {
    const res = await client.probe('', SERVER_TIMEOUT_MS);
    const receivedAt = now();
    const how = withCert ? 'with the client certificate' : cfg.ssl_cert === null ? 'without a client certificate' : 'without the client certificate (not readable as this user)';
    const server = pass('server', `${cfg.server_url} answered (HTTP ${res.status}) over verified TLS ${how} in ${receivedAt - sentAt} ms`);
    const date = res.headers.date;
    const skew = clockSkew(Array.isArray(date) ? date[0] : date, sentAt, receivedAt);
    return [server, skew === null ? skip('clock', 'the server sent no Date header') : clockCheck(skew)];
  } catch (e) {
    const fix =
      `check server_url in agent.yaml, that tuxsec-server runs and that this host reaches it (DNS, firewall); ` +
      `for a certificate error, ca_cert must be the CA that signed the server's certificate`;
    return [fail('server', (e as Error).message, fix), skip('clock', 'the server did not answer')];
  } finally {
    await client.close();
  }
}
