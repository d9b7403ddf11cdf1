/**
 * Text from elsewhere (an agent's hostname, version, error, output) made safe to print on a
 * terminal: control characters would otherwise let an agent set the window title, clear the
 * screen, move the cursor over earlier lines or, with bidi overrides, make text read backwards.
 * Each such character is shown as a visible escape (`\x1b`, `\u202e`) rather than dropped, so the
 * operator sees that something was there.
 */

/** C0 controls (newline and tab too: a hostname with a newline would forge a table row), DEL, C1 controls, bidi and line-separator characters. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw: it escapes C0 itself. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string, width: number): string => c.charCodeAt(0).toString(16).padStart(width, '0');

/** One line of text with every control, C1 and bidi character shown as an escape. */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE, (c) => (c.charCodeAt(0) <= 0xff ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`));
}

/** JSON text (from JSON.stringify) with the characters it leaves raw escaped; still the same JSON value. */
export function terminalSafeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
}
