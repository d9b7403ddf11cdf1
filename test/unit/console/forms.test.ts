/**
 * The console's forms: the generated ones (console/src/schema-form.ts: a JSON Schema of an action's
 * parameters to fields, the form's values back to parameters, errors naming the field), labels and
 * targets (console/src/labels.ts), and the page paths both ends share.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { fieldsOf, fieldsOfParameters, labelOf, paramsOf } from '../../../console/src/schema-form.ts';
import { formatLabels, parseLabels, targetOf } from '../../../console/src/labels.ts';
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

  test('paramsOf does not hang on a hostile pattern from a host\'s module-info (ReDoS)', () => {
    // A malicious plugin's schema must not freeze the operator's tab: such a pattern is left to the host.
    const hostile = fieldsOf({
      type: 'object',
      properties: {
        nested: { type: 'string', pattern: '^(a+)+$' },
        alternation: { type: 'string', pattern: '^(a|a)*$' },
        polynomial: { type: 'string', pattern: '^a*a*a*a*a*a*$' },
      },
    });
    const text = `${'a'.repeat(24)}!`;
    const t0 = performance.now();
    const r = paramsOf(hostile, { nested: text, alternation: text, polynomial: `${'a'.repeat(60)}!` });
    const ms = performance.now() - t0;
    assert.ok(ms < 500, `took ${Math.round(ms)} ms`);
    assert.deepEqual(r.errors, []);
    // A plain pattern (the firewalld module's own) is still checked in the browser.
    const plain = fieldsOf({ type: 'object', properties: { port: { type: 'string', pattern: '^[0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp|sctp|dccp)$' } } });
    assert.match(paramsOf(plain, { port: '80/icmp' }).errors[0]!.message, /does not have the expected form/);
    assert.deepEqual(paramsOf(plain, { port: '80-90/tcp' }).errors, []);
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

describe('labels', () => {
  test('parseLabels reads KEY=VALUE pairs separated by commas or lines and names a bad one', () => {
    assert.deepEqual(parseLabels(' env=prod, role = web\nzone=a=b '), { labels: { env: 'prod', role: 'web', zone: 'a=b' }, error: null });
    assert.deepEqual(parseLabels(''), { labels: {}, error: null });
    assert.equal(parseLabels('env=prod, broken').error, 'label "broken" is not KEY=VALUE');
    assert.equal(parseLabels('=x').error, 'label "=x" is not KEY=VALUE');
    assert.equal(formatLabels({ a: '1', b: '2' }), 'a=1, b=2');
  });

  test('targetOf gives a label or a list of agents, never both, never nothing', () => {
    assert.deepEqual(targetOf('env=prod', ''), { target: { label: { env: 'prod' } }, error: null });
    assert.deepEqual(targetOf('', 'a1, a2 a1\nb'), { target: { agents: ['a1', 'a2', 'b'] }, error: null });
    assert.match(targetOf('env=prod', 'a1').error!, /not both/);
    assert.match(targetOf('', ' ').error!, /Give a label/);
    assert.match(targetOf('nope', '').error!, /not KEY=VALUE/);
  });
});
