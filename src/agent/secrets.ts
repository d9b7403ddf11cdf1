/**
 * Where the agent's secrets live, the root side ("register" and "migrate-secrets" write them).
 * agent.yaml is 0640 root:tuxsec so the agent can read it, and `tuxsec` is also the group of
 * rootd's socket: every CLI user in that group can read agent.yaml.
 * So the api_key is kept out of it, in a credentials file only the agent's user can read
 * (<config dir>/credentials/api_key, 0600 tuxsec:tuxsec in a 0700 tuxsec directory); the agent
 * (config.ts) refuses a credentials file or client private key (ssl_key) group or others can read.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { lookupUser } from '../os/users.ts';
import { assertTrustedDir, assertTrustedPath } from '../os/secure-files.ts';
import { ConfigError } from '../common/config-file.ts';
import { AGENT_USER, checkSecretValue } from './config.ts';
import { writeFileAtomic } from '../os/durable-files.ts';

/** Environment variable that can carry the enrollment token instead of the command line. */
export const ENROLL_TOKEN_ENV = 'TUXSEC_ENROLL_TOKEN';

const MAX_SECRET_BYTES = 4096;

/** The credentials file register writes when the config names none: beside agent.yaml. */
export function defaultApiKeyFile(configFile: string): string {
  return path.join(path.dirname(path.resolve(configFile)), 'credentials', 'api_key');
}

interface Owner {
  uid: number;
  gid: number;
}

/** The agent user's ids when running as root (files are then given to it); null otherwise. */
async function agentOwner(): Promise<Owner | null> {
  if (process.getuid?.() !== 0) return null;
  const u = await lookupUser(AGENT_USER);
  if (!u) throw new ConfigError(`cannot store the agent's credentials: no user "${AGENT_USER}" (install.sh or the package creates it)`);
  return { uid: u.uid, gid: u.gid };
}

/**
 * Makes the credentials directory, 0700 and owned by the agent's user, when it is missing. An
 * existing one is used as it is (it may be /etc/tuxsec itself), as long as it and every directory
 * above it can be changed only by root or the agent's user: otherwise the path could be swapped
 * between the check and the write.
 */
function ensureCredentialsDir(dir: string, owner: Owner | null): void {
  const where = `cannot store the agent's credentials in ${JSON.stringify(dir)}`;
  try {
    assertTrustedDir(path.dirname(dir));
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (st === null) {
    fs.mkdirSync(dir, { mode: 0o700 });
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
    fs.chmodSync(dir, 0o700);
    return;
  }
  if (!st.isDirectory()) throw new ConfigError(`${where}: not a directory`);
  const me = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me && st.uid !== owner?.uid) throw new ConfigError(`${where}: owned by uid ${st.uid}`);
  if ((st.mode & 0o022) !== 0) throw new ConfigError(`${where}: writable by group or others`);
}

/** Writes the api_key to `file` atomically: 0600, owned by the agent's user when run as root. */
export async function storeApiKey(file: string, apiKey: string): Promise<void> {
  const owner = await agentOwner();
  ensureCredentialsDir(path.dirname(file), owner);
  writeFileAtomic(file, apiKey + '\n', owner ? { mode: 0o600, ...owner } : { mode: 0o600 });
}

/**
 * Whether `file` already holds `apiKey` as a file the agent's user alone owns and reads: a regular
 * file (not a link), 0600, owned by that user (or by us when not root), one hard link. Anything
 * else at that path (planted by the tuxsec user, who owns the credentials directory) is no proof
 * the agent ever used it.
 */
export async function apiKeyFileHolds(file: string, apiKey: string): Promise<boolean> {
  const owner = await agentOwner();
  const uid = owner?.uid ?? process.getuid?.() ?? 0;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    if (['ELOOP', 'ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return false;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (st.mode & 0o7777) !== 0o600 || st.uid !== uid || st.nlink !== 1) return false;
    const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return n <= MAX_SECRET_BYTES && buf.subarray(0, n).toString('utf8').trim() === apiKey;
  } finally {
    fs.closeSync(fd);
  }
}

/** What tightenPrivateFile did: changed the file, or left it alone (with why, when that needs saying). */
export interface TightenResult {
  changed: boolean;
  /** Set when a key that looks like the agent's was left alone because changing it was unsafe. */
  refused?: string;
}

/**
 * Gives a private key file that the socket group can read to the agent's user, 0600, through a
 * descriptor opened without following a link. Only a key set up for the agent (its group is the
 * agent's group, as the older docs said: 0640 root:tuxsec) is changed; a key that belongs to
 * something else is left alone, and the agent names it when it refuses to start.
 * Root hands the file to the tuxsec user, so it must be the key and not another file put in its
 * place: every directory above it must be changeable by root alone (else the tuxsec user could
 * swap in a link or a hard link), and the file must have one hard link (a second name could be
 * /etc/tuxsec/agent.yaml or /etc/shadow, linked where protected_hardlinks is off).
 */
export async function tightenPrivateFile(file: string): Promise<TightenResult> {
  const owner = await agentOwner();
  if (!owner) return { changed: false };
  const shown = JSON.stringify(file.slice(0, 300));
  let dir: string;
  try {
    dir = assertTrustedPath(path.dirname(path.resolve(file)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { changed: false };
    return { changed: false, refused: `cannot make ssl_key ${shown} private: ${(e as Error).message} (a user who can change it could swap the key for another file); left as it is` };
  }
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, path.basename(file)), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    // A link (to a key managed elsewhere) or no file: not ours to change.
    if (['ELOOP', 'ENOENT'].includes((e as NodeJS.ErrnoException).code ?? '')) return { changed: false };
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (st.mode & 0o077) === 0) return { changed: false };
    if (st.gid !== owner.gid && st.uid !== owner.uid) return { changed: false };
    if (st.nlink !== 1) {
      return { changed: false, refused: `cannot make ssl_key ${shown} private: it has ${st.nlink} hard links (another name could be a file that is not the key); left as it is` };
    }
    fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fchmodSync(fd, 0o600);
    return { changed: true };
  } finally {
    fs.closeSync(fd);
  }
}

/** Sets keys in the YAML text keeping comments and the other keys; returns the new text. */
export function updateConfigText(text: string, values: Record<string, string | number | null>): string {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(`cannot update config: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  for (const [k, v] of Object.entries(values)) doc.set(k, v);
  return doc.toString();
}

export interface TokenSources {
  token?: string;
  tokenFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Reads all of standard input (injected for tests). */
  readStdin?: () => string;
  /** The command's name for tokenFile in messages (setup's is --enrollment-token-file). */
  fileFlag?: string;
}

function readStdinSync(): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
      if (code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > MAX_SECRET_BYTES) throw new ConfigError(`cannot read the enrollment token from standard input: larger than ${MAX_SECRET_BYTES} bytes`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The enrollment token from exactly one of: --token VALUE, --token - or --token-file - (standard
 * input), --token-file PATH, or $TUXSEC_ENROLL_TOKEN. The last three keep it out of `ps` and the
 * shell history. Undefined when none is given (a server that takes no token).
 */
export function readEnrollToken(src: TokenSources): string | undefined {
  const env = src.env ?? process.env;
  const fromEnv = env[ENROLL_TOKEN_ENV];
  const given = [src.token !== undefined, src.tokenFile !== undefined, fromEnv !== undefined && fromEnv !== ''].filter(Boolean).length;
  const fileFlag = src.fileFlag ?? '--token-file';
  if (given > 1) throw new ConfigError(`cannot register: give the enrollment token once (${src.fileFlag ? '' : '--token, '}${fileFlag} or $${ENROLL_TOKEN_ENV}), not ${given} times`);
  const stdin = src.readStdin ?? readStdinSync;
  if (src.token === '-' || src.tokenFile === '-') return checkSecretValue(stdin(), 'the enrollment token from standard input');
  if (src.token !== undefined) return checkSecretValue(src.token, '--token');
  if (src.tokenFile !== undefined) {
    const what = `${fileFlag} ${JSON.stringify(src.tokenFile.slice(0, 200))}`;
    let text: string;
    try {
      const st = fs.statSync(src.tokenFile);
      if (!st.isFile()) throw new ConfigError(`cannot read ${what}: not a regular file`);
      if (st.size > MAX_SECRET_BYTES) throw new ConfigError(`cannot read ${what}: larger than ${MAX_SECRET_BYTES} bytes`);
      text = fs.readFileSync(src.tokenFile, 'utf8');
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new ConfigError(`cannot read ${what}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
    }
    return checkSecretValue(text, what);
  }
  if (fromEnv !== undefined && fromEnv !== '') return checkSecretValue(fromEnv, `$${ENROLL_TOKEN_ENV}`);
  return undefined;
}
