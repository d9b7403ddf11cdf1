/**
 * From an action's parameter schema (JSON Schema, as module-info gives it) to the fields of a form,
 * and from the form's values back to the action's parameters. Pure: no DOM, tested in test/unit.
 * A schema this does not understand becomes a JSON field, so every action stays reachable.
 */

export type FieldKind = 'text' | 'integer' | 'number' | 'boolean' | 'enum' | 'list' | 'json';

export interface Field {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  description: string;
  /** enum: the values offered. */
  options?: string[];
  /** list: what each line is. */
  itemKind?: 'text' | 'integer' | 'number';
  min?: number;
  max?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  default?: unknown;
}

type Schema = Record<string, unknown>;

const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The schema without a `null` alternative (an optional value written as `anyOf: [X, null]`). */
function nonNull(s: Schema): Schema {
  for (const key of ['anyOf', 'oneOf'] as const) {
    const alts = s[key];
    if (Array.isArray(alts)) {
      const rest = alts.filter((a) => !(isObj(a) && a.type === 'null'));
      if (rest.length === 1 && isObj(rest[0])) return { ...rest[0], description: s.description ?? rest[0].description };
    }
  }
  if (Array.isArray(s.type)) {
    const rest = (s.type as unknown[]).filter((t) => t !== 'null');
    if (rest.length === 1) return { ...s, type: rest[0] };
  }
  return s;
}

/** The values of an enumeration (`enum`, or `anyOf`/`oneOf` of `const`s); null when it is not one. */
function enumValues(s: Schema): string[] | null {
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string' || typeof v === 'number')) return s.enum.map(String);
  for (const key of ['anyOf', 'oneOf'] as const) {
    const alts = s[key];
    if (Array.isArray(alts) && alts.length > 0 && alts.every((a) => isObj(a) && (typeof a.const === 'string' || typeof a.const === 'number'))) {
      return alts.map((a) => String((a as Schema).const));
    }
  }
  return null;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** "confirm_timeout" -> "Confirm timeout". */
export function labelOf(name: string): string {
  const words = name.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function fieldOf(name: string, raw: Schema, required: boolean): Field {
  const s = nonNull(raw);
  const base: Field = { name, label: typeof s.title === 'string' ? s.title : labelOf(name), kind: 'json', required, description: typeof s.description === 'string' ? s.description : '' };
  if (s.default !== undefined) base.default = s.default;
  const options = enumValues(s);
  if (options) return { ...base, kind: 'enum', options };
  switch (s.type) {
    case 'string': {
      const f: Field = { ...base, kind: 'text' };
      if (num(s.minLength) !== undefined) f.minLength = num(s.minLength);
      if (num(s.maxLength) !== undefined) f.maxLength = num(s.maxLength);
      if (typeof s.pattern === 'string') f.pattern = s.pattern;
      return f;
    }
    case 'integer':
    case 'number': {
      const f: Field = { ...base, kind: s.type };
      const min = num(s.minimum) ?? num(s.exclusiveMinimum);
      const max = num(s.maximum) ?? num(s.exclusiveMaximum);
      if (min !== undefined) f.min = min;
      if (max !== undefined) f.max = max;
      return f;
    }
    case 'boolean':
      return { ...base, kind: 'boolean' };
    case 'array': {
      const items = isObj(s.items) ? nonNull(s.items) : null;
      if (items && enumValues(items) === null && (items.type === 'string' || items.type === 'integer' || items.type === 'number')) {
        return { ...base, kind: 'list', itemKind: items.type === 'string' ? 'text' : items.type };
      }
      return base;
    }
    default:
      return base;
  }
}

/** The fields of a parameters schema (an object schema); [] for an action without parameters. */
export function fieldsOf(schema: unknown): Field[] {
  if (!isObj(schema) || !isObj(schema.properties)) return [];
  const required = new Set(Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : []);
  return Object.entries(schema.properties)
    .filter((e): e is [string, Schema] => isObj(e[1]))
    .map(([name, s]) => fieldOf(name, s, required.has(name)));
}

/**
 * Fields from module_info's `parameters` list, for a module that gives no `schema` (the original
 * Python agent's modules): its `type` words mapped to kinds.
 */
export function fieldsOfParameters(params: ReadonlyArray<{ name: string; type: string; description?: string; required?: string | boolean }>): Field[] {
  const kinds: Record<string, FieldKind> = { string: 'text', str: 'text', integer: 'integer', int: 'integer', number: 'number', float: 'number', boolean: 'boolean', bool: 'boolean', array: 'list', list: 'list' };
  return params.map((p) => {
    const kind = kinds[p.type.toLowerCase()] ?? 'json';
    const f: Field = { name: p.name, label: labelOf(p.name), kind, required: p.required === true || p.required === 'true', description: p.description ?? '' };
    if (kind === 'list') f.itemKind = 'text';
    return f;
  });
}

/** A form value: the text of an input, or a checkbox's state. */
export type FormValue = string | boolean;

export interface ParseResult {
  params: Record<string, unknown>;
  /** One per field that is wrong, naming it (the form shows them in an error summary). */
  errors: Array<{ field: string; message: string }>;
}

function parseNumber(f: Field, text: string, what: string): { value?: number; error?: string } {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) return { error: `${what} must be a number, not "${text}"` };
  if ((f.kind === 'integer' || f.itemKind === 'integer') && !Number.isInteger(n)) return { error: `${what} must be a whole number, not "${text}"` };
  if (f.min !== undefined && n < f.min) return { error: `${what} must be at least ${f.min}` };
  if (f.max !== undefined && n > f.max) return { error: `${what} must be at most ${f.max}` };
  return { value: n };
}

/**
 * The parameters the form's values stand for. An empty optional field is left out (the action's
 * default applies); a required one is an error, as is a value of the wrong type.
 */
export function paramsOf(fields: readonly Field[], values: Readonly<Record<string, FormValue | undefined>>): ParseResult {
  const params: Record<string, unknown> = {};
  const errors: ParseResult['errors'] = [];
  for (const f of fields) {
    const v = values[f.name];
    if (f.kind === 'boolean') {
      if (v === true || v === false) params[f.name] = v;
      else if (f.required) params[f.name] = false;
      continue;
    }
    const text = typeof v === 'string' ? v : '';
    if (text.trim() === '') {
      if (f.required) errors.push({ field: f.name, message: `${f.label} is required` });
      continue;
    }
    switch (f.kind) {
      case 'integer':
      case 'number': {
        const r = parseNumber(f, text.trim(), f.label);
        if (r.error !== undefined) errors.push({ field: f.name, message: r.error });
        else params[f.name] = r.value;
        break;
      }
      case 'enum':
        if (f.options && !f.options.includes(text)) errors.push({ field: f.name, message: `${f.label} must be one of ${f.options.join(', ')}` });
        else params[f.name] = text;
        break;
      case 'list': {
        const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
        if (f.itemKind === 'integer' || f.itemKind === 'number') {
          const out: number[] = [];
          for (const l of lines) {
            const r = parseNumber({ ...f, min: undefined, max: undefined }, l, `each line of ${f.label}`);
            if (r.error !== undefined) errors.push({ field: f.name, message: r.error });
            else out.push(r.value!);
          }
          params[f.name] = out;
        } else params[f.name] = lines;
        break;
      }
      case 'json':
        try {
          params[f.name] = JSON.parse(text);
        } catch (e) {
          errors.push({ field: f.name, message: `${f.label} is not valid JSON: ${(e as Error).message}` });
        }
        break;
      default:
        if (f.maxLength !== undefined && text.length > f.maxLength) errors.push({ field: f.name, message: `${f.label} must be at most ${f.maxLength} characters` });
        else if (f.pattern !== undefined && !safeTest(f.pattern, text)) errors.push({ field: f.name, message: `${f.label} does not have the expected form (${f.pattern})` });
        else params[f.name] = text;
    }
  }
  return { params, errors };
}

/**
 * A pattern the browser tests is one whose matching time stays small: no repeated group (`(a+)+`,
 * `(a|a)*`), at most 3 repetitions in all (`a*a*a*...` is polynomial), and text of at most 256
 * characters. A schema comes from a host's module-info, so a malicious plugin could otherwise
 * freeze the operator's tab; any other pattern is left to the host, which checks it anyway.
 */
const PATTERN_MAX = 512;
const PATTERN_MAX_REPEATS = 3;
const PATTERN_TEXT_MAX = 256;
function cheapToTest(pattern: string, text: string): boolean {
  if (pattern.length > PATTERN_MAX || text.length > PATTERN_TEXT_MAX) return false;
  if (/\)[*+{]/.test(pattern)) return false;
  return (pattern.match(/[*+{]/g) ?? []).length <= PATTERN_MAX_REPEATS;
}

/** A schema's pattern tested in the browser; one the browser cannot compile or test cheaply is left to the agent. */
function safeTest(pattern: string, text: string): boolean {
  if (!cheapToTest(pattern, text)) return true;
  try {
    return new RegExp(pattern, 'u').test(text);
  } catch {
    return true;
  }
}
