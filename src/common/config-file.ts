/**
 * The one config loader of rootd.yaml, agent.yaml and tuxsec-server.yaml: a size-capped regular
 * file, YAML with a cap on aliases and no duplicate keys, validated against a TypeBox schema with
 * defaults filled in. Every message has one shape, `cannot load config <file>: <why>`, and names
 * the offending key; the value of a secret key is never shown.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import type { Static, TSchema } from '@sinclair/typebox';
// Named imports, not the Value namespace: the operator commands' bundle keeps only these.
import { Errors } from '@sinclair/typebox/errors';
import { Check, Default } from '@sinclair/typebox/value';

export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Aliases a config may use: a handful is normal, thousands expand to a "billion laughs". */
export const MAX_CONFIG_ALIASES = 100;

/** A config problem; the message names the file and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A JSON rendering of a value for a message, bounded. */
export function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** The error for a key whose value is refused; `secret` hides the value. */
export function badKey(file: string, key: string, value: unknown, why: string, secret = false): ConfigError {
  return new ConfigError(`cannot load config ${file}: key "${key}": ${secret ? '(hidden)' : shown(value)} ${why}`);
}

/** Reads a config file's text; with `optional`, a missing file is null. */
export function readConfigText(file: string, opts: { optional?: boolean } = {}): string | null {
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new ConfigError(`cannot load config ${file}: not a regular file`);
    if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(`cannot load config ${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && opts.optional) return null;
    throw new ConfigError(`cannot load config ${file}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
  }
}

/** Parses YAML text; an empty document is an empty mapping. */
export function parseConfigYaml(text: string, file: string): unknown {
  try {
    return parse(text, { maxAliasCount: MAX_CONFIG_ALIASES, uniqueKeys: true }) ?? {};
  } catch (e) {
    throw new ConfigError(`cannot load config ${file}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

export interface ValidateOptions {
  /** Top-level keys whose values are never shown in a message. */
  secrets?: readonly string[];
}

function keyOf(path: string): string {
  return path.split('/').filter(Boolean).join('.') || '(top level)';
}

/**
 * Validates a parsed config: defaults filled in, unknown keys and bad values refused with a
 * message naming the key. A top-level `key: null` (or `key:`) for a key that does not take null
 * but has a default means that default, as in the seed's agent.yaml.
 */
export function validateConfig<T extends TSchema>(schema: T, raw: unknown, file: string, opts: ValidateOptions = {}): Static<T> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`cannot load config ${file}: the top level must be a mapping of keys`);
  }
  const props = (schema as unknown as { properties?: Record<string, TSchema> }).properties ?? {};
  const obj: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const prop = props[k];
    if (!prop) throw new ConfigError(`cannot load config ${file}: unknown key "${k}"`);
    if (v === null && prop.default !== undefined && !Check(prop, null)) continue;
    obj[k] = v;
  }
  const value = Default(schema, structuredClone(obj));
  // Value, not TypeCompiler: a config is checked once, and the compiler would only add start-up time.
  if (Check(schema, value)) return value as Static<T>;
  const errors = [...Errors(schema, value)];
  // The most specific error: an unknown nested key, else the deepest path.
  const unknown = errors.find((e) => e.message.toLowerCase().includes('unexpected property'));
  if (unknown) throw new ConfigError(`cannot load config ${file}: unknown key "${keyOf(unknown.path)}"`);
  const err = errors.sort((a, b) => b.path.length - a.path.length)[0]!;
  const key = keyOf(err.path);
  const desc = (err.schema as { description?: string }).description;
  const why = `is invalid: ${err.message.charAt(0).toLowerCase()}${err.message.slice(1)}${desc ? ` (${desc})` : ''}`;
  throw badKey(file, key, err.value, why, opts.secrets?.includes(key.split('.')[0]!) ?? false);
}

/** Reads, parses and validates a config file; with `optional`, a missing file is an empty one. */
export function loadConfigFile<T extends TSchema>(schema: T, file: string, opts: ValidateOptions & { optional?: boolean } = {}): Static<T> {
  const text = readConfigText(file, opts);
  return validateConfig(schema, text === null ? {} : parseConfigYaml(text, file), file, opts);
}
