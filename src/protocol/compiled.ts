/**
 * Compiled TypeBox checkers, one per schema, compiled on first use: start-up pays only for the
 * schemas a program uses, and a schema checked often is compiled once.
 */
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** The compiled checker of `schema`. */
export function compiled<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = checks.get(schema) as TypeCheck<T> | undefined;
  if (!c) {
    c = TypeCompiler.Compile(schema);
    checks.set(schema, c);
  }
  return c;
}
