/**
 * Operator passwords: scrypt (memory-hard, in Node's crypto: no download) with a 16-byte salt, the
 * parameters stored with the hash so they can be raised later. Hashing is expensive by design, so
 * at most `concurrency` run at once and at most `queue` wait: a login flood costs a bounded amount
 * of memory and CPU, and the callers beyond the queue are told to come back.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';

/** log2 of scrypt's N (2^15: 32 MiB and ~50-100 ms a hash on this class of machine). */
export const SCRYPT_LOG_N = 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const SALT_LEN = 16;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 1024;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why a password is refused, or null when it is acceptable. */
export function passwordProblem(pw: string): string | null {
  if (pw.length < PASSWORD_MIN) return `shorter than ${PASSWORD_MIN} characters`;
  if (pw.length > PASSWORD_MAX) return `longer than ${PASSWORD_MAX} characters`;
  // Control characters come from a pasted file or a terminal, never from a typed password.
  if (CONTROL.test(pw)) return 'contains a control character';
  return null;
}

/** A new random password (24 characters of base64url, 144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

interface Parsed { logN: number; r: number; p: number; salt: Buffer; hash: Buffer }

/** `scrypt$<logN>$<r>$<p>$<salt b64>$<hash b64>` */
function parse(stored: string): Parsed | null {
  const m = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]{1,100})\$([A-Za-z0-9+/=]{1,200})$/.exec(stored);
  if (!m) return null;
  const logN = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (logN < 10 || logN > 22 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  return { logN, r, p, salt: Buffer.from(m[4]!, 'base64'), hash: Buffer.from(m[5]!, 'base64') };
}

function derive(pw: string, salt: Buffer, logN: number, r: number, p: number, len: number): Promise<Buffer> {
  const N = 2 ** logN;
  // Node refuses above maxmem (32 MiB by default, exactly what N=2^15, r=8 needs): leave room.
  const opts: ScryptOptions = { N, r, p, maxmem: 128 * N * r * 2 };
  return new Promise((resolve, reject) => scrypt(pw.normalize('NFC'), salt, len, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Runs at most `concurrency` hashes at once with at most `queue` waiting. */
export class PasswordHasher {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** Checked for a user that does not exist: random, so it matches nothing. */
  private readonly dummy: Parsed;

  constructor(
    private readonly concurrency = 2,
    private readonly queue = 64,
    private readonly logN = SCRYPT_LOG_N,
  ) {
    this.dummy = { logN, r: R, p: P, salt: randomBytes(SALT_LEN), hash: randomBytes(KEY_LEN) };
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.queue) {
        throw HttpError.of(ErrorCodes.rateLimited, 'cannot check password now: too many logins at once, retry shortly', { retryAfter: 1 });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes to the next waiter as is; only when nobody waits is it freed.
      if (next) next();
      else this.running--;
    }
  }

  /** The stored form of a new password. */
  hash(pw: string): Promise<string> {
    return this.slot(async () => {
      const salt = randomBytes(SALT_LEN);
      const key = await derive(pw, salt, this.logN, R, P, KEY_LEN);
      return `scrypt$${this.logN}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
    });
  }

  /**
   * Whether `pw` matches `stored`. With `stored` null (no such user) a dummy hash is checked, so
   * an unknown name costs the same time as a wrong password.
   */
  verify(pw: string, stored: string | null): Promise<boolean> {
    return this.slot(async () => {
      const real = stored === null ? null : parse(stored);
      const target = real ?? this.dummy;
      const key = await derive(pw, target.salt, target.logN, target.r, target.p, target.hash.length);
      return real !== null && key.length === real.hash.length && timingSafeEqual(key, real.hash);
    });
  }

  /** Whether a stored hash was made with weaker parameters than today's (rehash at next login). */
  outdated(stored: string): boolean {
    const p = parse(stored);
    return p === null || p.logN < this.logN || p.r < R;
  }
}
