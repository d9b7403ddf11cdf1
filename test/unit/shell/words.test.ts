/** tuxsec-shell's word splitter: what sh would read the same way is split, everything else refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_COMMAND_BYTES, RefusedCommand, splitWords } from '../../../src/shell/words.ts';
import { parsePublicKeys } from '../../../src/agent/ssh-setup.ts';

describe('splitWords', () => {
  const ok: Array<[string, string[]]> = [
    ['tuxsec-cli execute systeminfo get_hostname', ['tuxsec-cli', 'execute', 'systeminfo', 'get_hostname']],
    ['  tuxsec-cli\tping  ', ['tuxsec-cli', 'ping']],
    ['echo "test"', ['echo', 'test']],
    [`--param 'rule=rule family="ipv4" source address="10.0.0.0/8" accept'`, ['--param', 'rule=rule family="ipv4" source address="10.0.0.0/8" accept']],
    [`--json-params '{"zone": "public", "x": "a;b|c$d\\\\e"}'`, ['--json-params', '{"zone": "public", "x": "a;b|c$d\\\\e"}']],
    [`a'b c'"d e"f`, ['ab cd ef']],
    [`'' ""`, ['', '']],
    ['--param port=8080/tcp --param zone=public', ['--param', 'port=8080/tcp', '--param', 'zone=public']],
    [`"it's"`, ["it's"]],
    ['', []],
  ];
  for (const [line, words] of ok) {
    it(`splitWords splits ${JSON.stringify(line)}`, () => assert.deepEqual(splitWords(line), words));
  }

  const refused: Array<[string, RegExp]> = [
    ['a; b', /";" outside quotes/],
    ['a | b', /"\|" outside quotes/],
    ['a && b', /"&" outside quotes/],
    ['$(id)', /"\$" outside quotes/],
    ['`id`', /"`" outside quotes/],
    ['a > f', /">" outside quotes/],
    ['a < f', /"<" outside quotes/],
    ['(a)', /"\(" outside quotes/],
    ['a\nb', /a newline outside quotes/],
    ["'a\nb'", /a newline inside quotes/],
    ['a\\ b', /"\\" outside quotes/],
    ['"$HOME"', /"\$" inside double quotes/],
    ['"`id`"', /"`" inside double quotes/],
    ['"a\\"b"', /"\\" inside double quotes/],
    ["'abc", /unterminated single quote/],
    ['"abc', /unterminated double quote/],
    ['ls *', /"\*" outside quotes/],
    ['cat ~/x', /"~" outside quotes/],
    ['a #b', /"#" outside quotes/],
    ['a\x00b', /control character 0x00/],
    ['caf\u00e9', /"\u00e9" outside quotes/],
  ];
  for (const [line, why] of refused) {
    it(`splitWords refuses ${JSON.stringify(line)}`, () => {
      assert.throws(() => splitWords(line), (e: Error) => e instanceof RefusedCommand && why.test(e.message) && /^cannot run command: /.test(e.message));
    });
  }

  it('splitWords refuses a line over the cap, counted in bytes', () => {
    assert.equal(splitWords('a'.repeat(MAX_COMMAND_BYTES)).length, 1);
    assert.throws(() => splitWords(`'${'\u00e9'.repeat(MAX_COMMAND_BYTES / 2)}'`), /longer than 65536 bytes/);
  });
});

describe('parsePublicKeys', () => {
  it('parsePublicKeys keeps type, key and a cleaned comment', () => {
    assert.deepEqual(parsePublicKeys('# c\nssh-ed25519 AAAAC3Nza== srv "x" y\n\n', 'k.pub'), ['ssh-ed25519 AAAAC3Nza== srv__x__y']);
  });
  it('parsePublicKeys refuses a line with options, which ssh-setup adds itself', () => {
    assert.throws(() => parsePublicKeys('command="/bin/sh" ssh-ed25519 AAAA', 'k.pub'), /cannot use key file k.pub: .* is not a public key/);
  });
  it('parsePublicKeys refuses a file without a key', () => {
    assert.throws(() => parsePublicKeys('# nothing\n', 'k.pub'), /no public key in it/);
  });
});
