import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findPoisonKey, nestingDepth } from '../../../src/protocol/json.ts';

test('nestingDepth counts brackets outside strings and stops past the limit', () => {
  assert.equal(nestingDepth(Buffer.from('{"a":[1,{"b":[]}]}'), 10), 4);
  assert.equal(nestingDepth(Buffer.from('{"a":"[[[[{{{{\\"[["}'), 10), 1);
  assert.equal(nestingDepth(Buffer.from('['.repeat(1000)), 16), 17);
});

test('findPoisonKey finds __proto__ and constructor.prototype anywhere, and allows a plain constructor key', () => {
  assert.equal(findPoisonKey(JSON.parse('{"a":[{"__proto__":1}]}')), 'a[0].__proto__');
  assert.equal(findPoisonKey({ x: { constructor: { prototype: {} } } }), 'x.constructor.prototype');
  assert.equal(findPoisonKey({ zones: { prototype: { interfaces: [] }, constructor: 'x' } }), null);
});
