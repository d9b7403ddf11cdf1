/**
 * Parameter schemas: TypeBox objects are the one source for validation, types and module-info.
 */
import { Type, type TObject, type TSchema, type TProperties } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { ParameterInfo } from '../protocol/messages.ts';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';

/** A parameters object: unknown parameters are always refused. */
export function Params<T extends TProperties>(properties: T, description?: string): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });
}

function typeName(s: TSchema): string {
  const t = (s as { type?: unknown }).type;
  if (typeof t === 'string') return t;
  if (Array.isArray((s as { anyOf?: unknown }).anyOf)) {
    const kinds = new Set(((s as unknown as { anyOf: TSchema[] }).anyOf).map(typeName));
    return kinds.size === 1 ? [...kinds][0]! : 'any';
  }
  return 'any';
}

/** module-info parameters in the compatible shape (`required` as a string). */
export function schemaToParameters(schema: TObject): ParameterInfo[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, s]) => ({
    name,
    type: typeName(s),
    description: (s as { description?: string }).description ?? '',
    required: required.has(name) ? 'true' : 'false',
  }));
}

const BY_TYPE: Record<string, () => TSchema> = {
  string: () => Type.String(),
  str: () => Type.String(),
  integer: () => Type.Integer(),
  int: () => Type.Integer(),
  number: () => Type.Number(),
  boolean: () => Type.Boolean(),
  bool: () => Type.Boolean(),
  array: () => Type.Array(Type.Unknown()),
  list: () => Type.Array(Type.Unknown()),
  object: () => Type.Object({}),
  dict: () => Type.Object({}),
};

/** Schema for a hand-written module's declared parameters (seed style). */
export function parametersToSchema(params: ParameterInfo[]): TObject {
  const props: TProperties = {};
  for (const p of params) {
    const make = BY_TYPE[p.type] ?? (() => Type.Unknown());
    const s = make();
    props[p.name] = String(p.required) === 'true' ? s : Type.Optional(s);
  }
  return Params(props);
}

const compiled = new WeakMap<TObject, TypeCheck<TObject>>();

function checker(schema: TObject): TypeCheck<TObject> {
  let c = compiled.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  return c;
}

/** Short, safe rendering of a hostile value for an error message. */
export function quote(value: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  } catch {
    s = `(${typeof value})`;
  }
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** Parameter names whose values are secrets: redacted in the audit log, never quoted in messages. */
export const SECRET_KEY = /pass|secret|token|api_?key|credential|private|auth/i;

/** True when a key anywhere in `value` names a secret (bounded: deeper levels count as secret). */
function holdsSecret(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth > 8) return true;
  for (const [k, v] of Object.entries(value)) if (SECRET_KEY.test(k) || holdsSecret(v, depth + 1)) return true;
  return false;
}

/**
 * Validates parameters against a schema; throws `invalid-params` naming the parameter
 * and the value. Unknown parameters are refused before anything else.
 */
export function validateParams(schema: TObject, params: Record<string, unknown>, where: string): void {
  for (const key of Object.keys(params)) {
    if (!Object.hasOwn(schema.properties, key)) {
      throw new TuxsecError(ErrorCodes.invalidParams, `${where}: unknown parameter ${quote(key)}`, { parameter: key });
    }
  }
  for (const key of schema.required ?? []) {
    if (!Object.hasOwn(params, key)) {
      throw new TuxsecError(ErrorCodes.invalidParams, `${where}: missing required parameter "${key}"`, { parameter: key });
    }
  }
  const c = checker(schema);
  if (c.Check(params)) return;
  const first = c.Errors(params).First();
  const segments = first ? first.path.replace(/^\//, '').split('/') : [];
  const name = segments[0] ?? '';
  // A secret is never echoed: the message goes to the audit log and the daemon's log.
  const secret = segments.some((s) => SECRET_KEY.test(s)) || holdsSecret(first?.value);
  const value = first ? first.value : undefined;
  // Lower-case only the first letter: the message may quote a case-sensitive pattern.
  const why = first ? first.message.charAt(0).toLowerCase() + first.message.slice(1) : 'invalid';
  const prop = name ? (schema.properties[name] as { description?: string } | undefined) : undefined;
  const hint = prop?.description ? `; ${prop.description}` : '';
  // Inside an object or array, where: `at zones."work --panic-on".services.0` (a JSON pointer's segments, unescaped).
  const inner = segments.slice(1).map((x) => x.replaceAll('~1', '/').replaceAll('~0', '~'));
  const at = !secret && inner.length > 0 ? ` at ${[name, ...inner].map((x) => (/^[A-Za-z0-9_]+$/.test(x) ? x : quote(x, 40))).join('.')}` : '';
  throw new TuxsecError(
    ErrorCodes.invalidParams,
    `${where}: invalid value ${secret ? '(redacted)' : quote(value)} for parameter "${name}"${at}: ${why}${hint}`,
    { parameter: name },
  );
}
