/**
 * The console's generated forms (console/src/schema-form.ts): a JSON Schema of an action's
 * parameters to fields, and the form's values back to parameters, errors naming the field.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { fieldsOf, fieldsOfParameters, labelOf, paramsOf } from '../../../console/src/schema-form.ts';
import { matchPage, pagePath } from '../../../src/protocol/console-routes.ts';

// The shape rootd's actions declare (TypeBox, as module-info sends it).
const addForwardPort = Type.Object(
  {
    zone: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'zone name' }),
    port: Type.String(),
    to_port: Type.Optional(Type.String()),
    permanent: Type.Optional(Type.Boolean()),
    confirm_timeout: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600 })),
    value: Type.Union([Type.Literal('all'), Type.Literal('unicast'), Type.Literal('off')]),
    args: Type.Array(Type.String()),
    priorities: Type.Optional(Type.Array(Type.Integer())),
    extra: Type.Optional(Type.Object({ a: Type.String() })),
    maybe: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Type.Null()])),
  },
  { additionalProperties: false },
);

describe('fieldsOf', () => {
  test('fieldsOf maps each JSON Schema type to its input kind, required from the schema', () => {
    const f = Object.fromEntries(fieldsOf(JSON.parse(JSON.stringify(addForwardPort))).map((x) => [x.name, x]));
    assert.deepEqual(Object.keys(f), ['zone', 'port', 'to_port', 'permanent', 'confirm_timeout', 'value', 'args', 'priorities', 'extra', 'maybe']);
    assert.equal(f.zone!.kind, 'text');
    assert.equal(f.zone!.required, true);
    assert.equal(f.zone!.pattern, '^[A-Za-z0-9_-]+$');
    assert.equal(f.zone!.maxLength, 64);
    assert.equal(f.zone!.description, 'zone name');
    assert.equal(f.to_port!.required, false);
    assert.equal(f.permanent!.kind, 'boolean');
    assert.deepEqual([f.confirm_timeout!.kind, f.confirm_timeout!.min, f.confirm_timeout!.max], ['integer', 5, 3600]);
    assert.deepEqual([f.value!.kind, f.value!.options], ['enum', ['all', 'unicast', 'off']]);
    assert.deepEqual([f.args!.kind, f.args!.itemKind], ['list', 'text']);
    assert.deepEqual([f.priorities!.kind, f.priorities!.itemKind], ['list', 'integer']);
    assert.equal(f.extra!.kind, 'json');
    assert.deepEqual([f.maybe!.kind, f.maybe!.min], ['number', 0]);
    assert.equal(f.confirm_timeout!.label, 'Confirm timeout');
  });

  test('fieldsOf gives no fields for an action without parameters or a schema that is not an object', () => {
    assert.deepEqual(fieldsOf(Type.Object({})), []);
    assert.deepEqual(fieldsOf(undefined), []);
    assert.deepEqual(fieldsOf('string'), []);
    assert.deepEqual(fieldsOf({ properties: { x: 'nonsense' } }), []);
  });

  test('fieldsOfParameters maps module_info parameter types of a module without a schema', () => {
    const f = fieldsOfParameters([
      { name: 'path', type: 'string', description: 'a path', required: 'true' },
      { name: 'depth', type: 'int', required: 'false' },
      { name: 'items', type: 'list', required: 'false' },
      { name: 'blob', type: 'dict', required: 'false' },
    ]);
    assert.deepEqual(
      f.map((x) => [x.name, x.kind, x.required]),
      [
        ['path', 'text', true],
        ['depth', 'integer', false],
        ['items', 'list', false],
        ['blob', 'json', false],
      ],
    );
  });
});

describe('paramsOf', () => {
  const fields = fieldsOf(addForwardPort);

  test('paramsOf turns form values into typed parameters and leaves empty optional ones out', () => {
    const r = paramsOf(fields, {
      zone: 'public',
      port: '8080/tcp',
      to_port: '',
      permanent: true,
      confirm_timeout: ' 60 ',
      value: 'unicast',
      args: '-p\n tcp \n\n--dport\n',
      priorities: '1\n2',
      extra: '{"a":"b"}',
    });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.params, { zone: 'public', port: '8080/tcp', permanent: true, confirm_timeout: 60, value: 'unicast', args: ['-p', 'tcp', '--dport'], priorities: [1, 2], extra: { a: 'b' } });
  });

  test('paramsOf names every wrong field: missing, not a number, out of range, not in the list, bad JSON, bad pattern', () => {
    const r = paramsOf(fields, { zone: 'pub lic', confirm_timeout: '3', value: 'loud', args: '', priorities: '1\nx', extra: '{', maybe: 'abc' });
    const by = Object.fromEntries(r.errors.map((e) => [e.field, e.message]));
    assert.match(by.zone!, /Zone does not have the expected form/);
    assert.match(by.port!, /Port is required/);
    assert.match(by.confirm_timeout!, /at least 5/);
    assert.match(by.value!, /must be one of all, unicast, off/);
    assert.match(by.args!, /Args is required/);
    assert.match(by.priorities!, /each line of Priorities must be a number, not "x"/);
    assert.match(by.extra!, /Extra is not valid JSON/);
    assert.match(by.maybe!, /Maybe must be a number, not "abc"/);
    assert.equal(r.errors.length, 8);
  });

  test('paramsOf refuses a fraction for an integer and text longer than maxLength', () => {
    const r = paramsOf(fields, { zone: 'x'.repeat(65), port: '1', value: 'all', args: 'a', confirm_timeout: '10.5' });
    assert.deepEqual(
      r.errors.map((e) => e.field),
      ['zone', 'confirm_timeout'],
    );
  });

  test('labelOf makes a sentence-case label of a parameter name', () => {
    assert.equal(labelOf('icmp_block-type'), 'Icmp block type');
  });
});

describe('console pages', () => {
  test('matchPage knows every page and nothing under /api or the agent paths', () => {
    assert.deepEqual(matchPage('/'), { page: 'dashboard', params: {} });
    assert.deepEqual(matchPage('/agents/abc%20d'), { page: 'agent', params: { id: 'abc d' } });
    assert.deepEqual(matchPage('/batches/b1/'), { page: 'batch', params: { id: 'b1' } });
    assert.equal(matchPage('/api/v1/agents'), null);
    assert.equal(matchPage('/agents/api/checkin/'), null);
    assert.equal(matchPage('/agents/%E0%A4%A'), null);
    assert.equal(pagePath('template', { id: 'a/b' }), '/templates/a%2Fb');
  });
});
