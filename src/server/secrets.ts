/**
 * Secrets of tuxsec-server: API keys and enrollment tokens are 32 random bytes, handed out once and
 * stored only as their sha256; every comparison is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new secret: 32 random bytes, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** sha256 of a secret, hex. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares a presented secret with a stored sha256 hex digest in constant time. */
export function secretMatches(presented: string, storedHash: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = Buffer.from(storedHash, 'hex');
  return b.length === a.length && timingSafeEqual(a, b);
}

/** A digest that matches nothing, to spend the same time on an unknown id as on a known one. */
export const NO_MATCH_HASH = '0'.repeat(64);
