/**
 * Hostile-input JSON helpers: nesting depth is checked on the raw bytes before
 * JSON.parse builds anything, and prototype-polluting keys are refused after.
 */

/**
 * True for `constructor` holding an object with its own `prototype`: merged into another
 * object, it reaches `Object.prototype` through `x.constructor.prototype`. A plain
 * `constructor` or `prototype` key (a firewalld zone may be called "prototype") pollutes
 * nothing, so it is allowed, as secure-json-parse does.
 */
function pollutingConstructor(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, 'prototype');
}

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
 * Finds a key that could pollute a prototype anywhere in a parsed value (`__proto__`, or
 * `constructor` holding `prototype`); returns its path or null. Recursive: callers check
 * the nesting depth first (see nestingDepth).
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
    const v = (value as Record<string, unknown>)[key];
    if (key === '__proto__') return key;
    if (key === 'constructor' && pollutingConstructor(v)) return 'constructor.prototype';
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
