/**
 * Loading YAML config files: size-capped, alias-capped, validated against a TypeBox
 * schema with errors that name the offending key.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import type { TSchema, Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';

const MAX_CONFIG_BYTES = 1024 * 1024;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Reads and parses a YAML file; an empty file is an empty object. */
export function readYaml(file: string): unknown {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (size > MAX_CONFIG_BYTES) throw new ConfigError(`cannot read config ${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
  const text = readFileSync(file, 'utf8');
  try {
    return parse(text, { maxAliasCount: 50, uniqueKeys: true }) ?? {};
  } catch (e) {
    throw new ConfigError(`cannot parse config ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
}

function keyOf(path: string): string {
  return path.replace(/^\//, '').split('/').join('.') || '(top level)';
}

/**
 * Validates a parsed config: defaults filled in, unknown keys and bad values refused
 * with a message naming the key.
 */
export function validateConfig<T extends TSchema>(schema: T, raw: unknown, file: string): Static<T> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`invalid config ${file}: the top level must be a mapping of keys`);
  }
  const value = Value.Default(schema, structuredClone(raw));
  const check = TypeCompiler.Compile(schema);
  if (check.Check(value)) return value as Static<T>;
  const errors = [...check.Errors(value)];
  // Prefer the most specific error: an unknown key, or the deepest path.
  const err =
    errors.find((e) => e.message.toLowerCase().includes('unexpected property')) ??
    errors.sort((a, b) => b.path.length - a.path.length)[0]!;
  const key = keyOf(err.path);
  if (err.message.toLowerCase().includes('unexpected property')) {
    throw new ConfigError(`invalid config ${file}: unknown key "${key}"`);
  }
  const desc = (err.schema as { description?: string }).description;
  throw new ConfigError(
    `invalid config ${file}: bad value ${JSON.stringify(err.value)?.slice(0, 80)} for key "${key}": ${err.message.charAt(0).toLowerCase() + err.message.slice(1)}${desc ? ` (${desc})` : ''}`,
  );
}
