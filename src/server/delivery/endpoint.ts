/**
 * The endpoints of agents the server delivers to, once: their schemas (what the database stores is
 * checked against them when read back) and the operator-input checks that build them. Every field
 * is checked here, before it is stored, because the SSH transport hands host and user to the
 * OpenSSH client and the push transport connects to the URL.
 */
import { X509Certificate } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { quote, schemaError } from '../../protocol/jobs.ts';
import { checkSshEndpoint } from './ssh.ts';
import type { AgentMode, PushEndpoint, SshEndpoint } from './transport.ts';

/** A CA file larger than this is not a certificate file. */
const MAX_CA_BYTES = 1024 * 1024;

/** Host names and addresses: never starting with `-` (the OpenSSH client would read an option). */
const HOST_PATTERN = '^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\\[?[0-9A-Fa-f:.]{2,45}\\]?)$';
const USER_PATTERN = '^[a-z_][a-z0-9_-]{0,31}$';
/**
 * One known_hosts line: optional marker, host pattern, key type, base64 key, optional comment; no
 * control characters (a newline would add a second, unpinned entry).
 */
const KNOWN_HOST_PATTERN = '^(?:@cert-authority )?[^\\s@][^\\s]{0,1023} (?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]{16,16384}={0,2}(?: [\\x20-\\x7e]{0,256})?$';

export const PushEndpointSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https://[^/?#@\\s]{1,300}$' }),
    caFile: Type.String({ minLength: 2, maxLength: 4096, pattern: '^/' }),
  },
  { additionalProperties: false },
);

export const SshEndpointSchema = Type.Object(
  {
    host: Type.String({ pattern: HOST_PATTERN }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    user: Type.String({ pattern: USER_PATTERN }),
    knownHost: Type.String({ maxLength: 20000, pattern: KNOWN_HOST_PATTERN }),
  },
  { additionalProperties: false },
);

/** A stored endpoint read back: checked against its mode's schema; null when it does not match. */
export function storedEndpoint(mode: AgentMode, raw: unknown): PushEndpoint | SshEndpoint | null {
  if (mode === 'push') return schemaError(PushEndpointSchema, raw) === null ? (raw as PushEndpoint) : null;
  if (mode === 'ssh') return schemaError(SshEndpointSchema, raw) === null ? (raw as SshEndpoint) : null;
  return null;
}

/** What an operator gives for a mode (the API body's fields). */
export interface ModeInput {
  mode: AgentMode;
  url?: string;
  ca_file?: string;
  host?: string;
  port?: number;
  user?: string;
  known_host?: string;
}

/** Refused operator input; the message names the field and the value. */
export class EndpointError extends Error {}

/** `https://host:port` of a URL an operator gave, or an EndpointError. */
export function pushUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new EndpointError(`cannot use url ${quote(raw)}: not a URL`);
  }
  if (u.protocol !== 'https:') throw new EndpointError(`cannot use url ${quote(raw)}: only https is allowed (the agent listens with TLS)`);
  if (u.username !== '' || u.password !== '') throw new EndpointError(`cannot use url ${quote(raw)}: no user or password in the URL`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new EndpointError(`cannot use url ${quote(raw)}: give only https://host:port (the paths are /execute and /health)`);
  }
  return `https://${u.host}`;
}

/** Checks that `file` is an absolute path to a readable PEM certificate; returns its content. */
export function readCaFile(file: string): Buffer {
  if (!path.isAbsolute(file)) throw new EndpointError(`cannot use CA file ${quote(file)}: give an absolute path`);
  let fd: number;
  try {
    // Non-blocking: a FIFO at that path must not hang the server waiting for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new EndpointError(`cannot read CA file ${quote(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new EndpointError(`cannot use CA file ${quote(file)}: not a regular file`);
    if (st.size > MAX_CA_BYTES) throw new EndpointError(`cannot use CA file ${quote(file)}: larger than ${MAX_CA_BYTES} bytes`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < st.size) {
      const r = readSync(fd, buf, n, st.size - n, n);
      if (r === 0) break;
      n += r;
    }
    const pem = buf.subarray(0, n);
    try {
      new X509Certificate(pem);
    } catch {
      throw new EndpointError(`cannot use CA file ${quote(file)}: not a PEM certificate`);
    }
    return pem;
  } finally {
    closeSync(fd);
  }
}

function check<T>(schema: Parameters<typeof schemaError>[0], value: T, what: string): T {
  const why = schemaError(schema, value);
  if (why !== null) throw new EndpointError(`cannot use ${what}: ${why}`);
  return value;
}

const UNUSED: Record<AgentMode, Array<keyof ModeInput>> = {
  pull: ['url', 'ca_file', 'host', 'port', 'user', 'known_host'],
  push: ['host', 'port', 'user', 'known_host'],
  ssh: ['url', 'ca_file'],
};

/** The endpoint of an operator's mode input, every field checked; EndpointError naming the field. */
export function endpointOf(input: ModeInput): PushEndpoint | SshEndpoint | null {
  for (const k of UNUSED[input.mode]) {
    if (input[k] !== undefined) throw new EndpointError(`cannot use ${k.replace('_', '-')} with mode ${input.mode}`);
  }
  if (input.mode === 'pull') return null;
  if (input.mode === 'push') {
    if (input.url === undefined) throw new EndpointError('cannot set push mode: the agent\'s url is missing');
    if (input.ca_file === undefined) throw new EndpointError('cannot set push mode: the CA file of the agent\'s certificate is missing');
    const url = pushUrl(input.url);
    readCaFile(input.ca_file);
    return check(PushEndpointSchema, { url, caFile: input.ca_file }, 'push endpoint');
  }
  if (input.host === undefined) throw new EndpointError('cannot set ssh mode: the agent\'s host is missing');
  if (input.known_host === undefined) throw new EndpointError('cannot set ssh mode: the agent\'s known_hosts line is missing (its host key is pinned)');
  const ep: SshEndpoint = { host: input.host, port: input.port ?? 22, user: input.user ?? 'tuxsec', knownHost: input.known_host.trim() };
  if (schemaError(SshEndpointSchema.properties.host, ep.host) !== null) throw new EndpointError(`cannot use host ${quote(ep.host)}: expected a host name or an IP address`);
  if (schemaError(SshEndpointSchema.properties.user, ep.user) !== null) throw new EndpointError(`cannot use user ${quote(ep.user)}: expected a user name`);
  if (schemaError(SshEndpointSchema.properties.knownHost, ep.knownHost) !== null) {
    throw new EndpointError(`cannot use known-host ${quote(ep.knownHost)}: expected one known_hosts line "<host> <key type> <base64 key>"`);
  }
  const stored = check(SshEndpointSchema, ep, 'ssh endpoint');
  // The transport's own checks too: what it would refuse at each delivery is refused here, once.
  try {
    checkSshEndpoint(stored);
  } catch (e) {
    throw new EndpointError((e as Error).message);
  }
  return stored;
}
