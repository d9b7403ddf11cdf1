/**
 * Hostile-input JSON helpers: nesting depth is checked on the raw bytes before
 * JSON.parse builds anything, and prototype-polluting keys are refused after.
 */

/** Keys that could reach an object's prototype when copied. */
const POISON_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Largest `{`/`[` nesting in a JSON text, counted outside strings. Stops early and
 * returns `limit + 1` as soon as the limit is passed.
 */
export function nestingDepth(buf: Buffer, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * Finds a poisoned key anywhere in a parsed value; returns its path or null. Recursive:
 * callers check the nesting depth first (see nestingDepth).
 */
export function findPoisonKey(value: unknown): string | null {
  if (value === null || typeof value !== 'object') return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v !== null && typeof v === 'object') {
        const p = findPoisonKey(v);
        if (p !== null) return `[${i}]${p.startsWith('[') ? '' : '.'}${p}`;
      }
    }
    return null;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (POISON_KEYS.has(key)) return key;
    const v = (value as Record<string, unknown>)[key];
    if (v !== null && typeof v === 'object') {
      const p = findPoisonKey(v);
      if (p !== null) return p.startsWith('[') ? `${key}${p}` : `${key}.${p}`;
    }
  }
  return null;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
