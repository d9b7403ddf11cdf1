import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { Params, validateParams } from '../../../src/sdk/schema.ts';
import type { TuxsecError } from '../../../src/protocol/errors.ts';

const schema = Params({
  zone: Type.String({ pattern: '^[a-z]+$', description: 'a zone name' }),
  password: Type.Optional(Type.String({ minLength: 8 })),
});
const refuses = (params: Record<string, unknown>, message: string) =>
  assert.throws(() => validateParams(schema, params, 'm a'), (e: TuxsecError) => e.code === 'invalid-params' && e.message === message);

test('validateParams names the unknown, the missing and the invalid parameter with its value', () => {
  validateParams(schema, { zone: 'public' }, 'm a');
  refuses({ zone: 'public', zonee: 1 }, 'm a: unknown parameter "zonee"');
  refuses({}, 'm a: missing required parameter "zone"');
  refuses({ zone: 'Public!' }, 'm a: invalid value "Public!" for parameter "zone": expected string to match \'^[a-z]+$\'; a zone name');
});

test('validateParams never quotes a secret', () => {
  assert.throws(
    () => validateParams(schema, { zone: 'public', password: 'short' }, 'm a'),
    (e: TuxsecError) => e.message.includes('(redacted)') && !e.message.includes('short'),
  );
});
