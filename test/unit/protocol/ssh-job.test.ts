import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONTROL_CHARACTER, MAX_COMMAND_BYTES, quoteWord } from '../../../src/protocol/ssh-command.ts';
import { jobCommandLine, parseJobWords } from '../../../src/protocol/ssh-job.ts';
import { findPoisonKey } from '../../../src/protocol/json.ts';
import { splitWords } from '../../../src/shell/words.ts';

// TUXSEC_PROPERTY_RUNS scales the generated cases (`npm run test:unit` alone runs 0.2).
const SCALE = Number(process.env.TUXSEC_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.max(1, Math.round(n * SCALE)) });

/** Any string tuxsec-shell can be given: every code point but control characters (tab allowed). */
const word = fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(new RegExp(CONTROL_CHARACTER, 'g'), ''));

describe('quoteWord', () => {
  it('quoteWord then splitWords is the identity for any string without control characters', () => {
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 8 }), (words) => {
        assert.deepEqual(splitWords(words.map(quoteWord).join(' ')), words);
      }),
      runs(2000),
    );
  });

  it('quoteWord keeps a rich rule with spaces, quotes, $ and backquotes whole', () => {
    const rule = `rule family="ipv4" source address="10.0.0.0/8" log prefix='it'"'"'s $HOME \`id\` $(id) ; | & \\' accept`;
    assert.deepEqual(splitWords(`tuxsec-cli ${quoteWord(rule)}`), ['tuxsec-cli', rule]);
  });

  it('quoteWord refuses NUL, a newline and an unpaired surrogate, naming what', () => {
    assert.throws(() => quoteWord('a\0b'), /^TuxsecError: cannot quote "a\\u0000b" for tuxsec-shell: it holds control character 0x00$/);
    assert.throws(() => quoteWord('a\nb'), /control character 0x0a/);
    assert.throws(() => quoteWord('a\ud800b'), /unpaired surrogate/);
  });
});

describe('jobCommandLine', () => {
  it('jobCommandLine then parseJobWords gives the same envelope for any parameters', () => {
    const id = fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }).filter((s) => !CONTROL_CHARACTER.test(s) && !/[\ud800-\udfff]/.test(s));
    const name = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);
    fc.assert(
      fc.property(id, name, name, fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 5 }), (jobId, module, action, raw) => {
        // JSON's own view of the parameters (-0 becomes 0).
        const params = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>;
        const job = { id: jobId, module, action, params };
        const [cli, ...args] = splitWords(jobCommandLine(job));
        assert.equal(cli, 'tuxsec-cli');
        // A key servers refuse (__proto__ anywhere) is refused here too, by name.
        if (findPoisonKey(params) !== null) assert.throws(() => parseJobWords(args), /forbidden key/);
        else assert.deepEqual(parseJobWords(args), job);
      }),
      runs(1000),
    );
  });

  it('jobCommandLine carries DEL inside a parameter as an escape', () => {
    const job = { id: 'j1', module: 'm', action: 'a', params: { rule: 'a\x7fb\nc' } };
    assert.deepEqual(parseJobWords(splitWords(jobCommandLine(job)).slice(1)), job);
  });

  it('jobCommandLine refuses a job whose command line is larger than tuxsec-shell takes', () => {
    const job = { id: 'big', module: 'm', action: 'a', params: { rule: 'x'.repeat(MAX_COMMAND_BYTES) } };
    assert.throws(() => jobCommandLine(job), /^TuxsecError: cannot send job "big" over SSH: its command line is \d+ bytes, more than 65536$/);
  });
});

describe('parseJobWords', () => {
  const ok = ['execute', 'systeminfo', 'get_hostname', '--json-params', '{}', '--job-id', 'j1'];
  const cases: Array<[string, string[], RegExp]> = [
    ['words in another order', ['execute', 'systeminfo', 'get_hostname', '--job-id', 'j1', '--json-params', '{}'], /expected tuxsec-cli execute <module> <action> --json-params <object> --job-id <id>/],
    ['a missing id', ok.slice(0, 6), /expected tuxsec-cli execute/],
    ['an empty id', [...ok.slice(0, 6), ''], /missing or invalid "id" ""/],
    ['params not JSON', ['execute', 'm', 'a', '--json-params', '{x', '--job-id', 'j1'], /--json-params is not JSON: "\{x"/],
    ['params an array', ['execute', 'm', 'a', '--json-params', '[1]', '--job-id', 'j1'], /must be a JSON object, got \[1\]/],
    ['params nested too deep', ['execute', 'm', 'a', '--json-params', '{"a":'.repeat(40) + '1' + '}'.repeat(40), '--job-id', 'j1'], /nested deeper than 32 levels/],
    ['a bad module name', ['execute', 'm;id', 'a', '--json-params', '{}', '--job-id', 'j1'], /cannot run job "j1": "module": .*got "m;id"/],
    ['a polluting key', ['execute', 'm', 'a', '--json-params', '{"constructor":{"prototype":{}}}', '--job-id', 'j1'], /forbidden key "params.constructor.prototype"/],
  ];
  for (const [what, args, re] of cases) {
    it(`parseJobWords refuses ${what}`, () => {
      assert.throws(() => parseJobWords(args), (e: Error) => e.name === 'TuxsecError' && re.test(e.message) && e.message.startsWith('cannot run job'));
    });
  }
  it('parseJobWords takes the form jobCommandLine writes', () => {
    assert.deepEqual(parseJobWords(ok), { id: 'j1', module: 'systeminfo', action: 'get_hostname', params: {} });
  });
});
