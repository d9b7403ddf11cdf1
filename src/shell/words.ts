/**
 * The command-line parser of tuxsec-shell. It never hands a line to a shell, so it accepts only
 * what needs no shell to mean the same thing it would mean to one:
 *
 * - words separated by spaces or tabs;
 * - unquoted characters from a small set (letters, digits and `_ @ % + = : , . / -`);
 * - single-quoted text taken literally, as sh takes it (how a client quotes a rich rule with
 *   spaces: `--param 'rule=rule family="ipv4" ... accept'`);
 * - double-quoted text without `$`, a backquote or a backslash, so nothing in it expands
 *   (the original server's probe `echo "test"`);
 * - quoted and unquoted parts joined into one word, as sh joins them (`'a'"b"c`).
 *
 * Everything else is refused with the offending character named: `; | & $` backquote `( ) < >`,
 * a backslash outside single quotes, globs, `~`, `#`, any control character (a newline too).
 */

import { CONTROL_CHARACTER as CONTROL, MAX_COMMAND_BYTES } from '../protocol/ssh-command.ts';

export { MAX_COMMAND_BYTES };

/** A command line the shell will not run; the message says why. */
export class RefusedCommand extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedCommand';
  }
}

const UNQUOTED = /[A-Za-z0-9_@%+=:,./-]/;

function named(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (ch === '\n') return 'a newline';
  if (ch === '\t') return 'a tab';
  if (code < 0x20 || code === 0x7f) return `control character 0x${code.toString(16).padStart(2, '0')}`;
  return `"${ch}"`;
}

function refuse(ch: string, where: string): never {
  throw new RefusedCommand(`cannot run command: ${named(ch)} ${where} is not allowed (tuxsec-shell runs no shell)`);
}

/** Splits a command line into words, or throws RefusedCommand. */
export function splitWords(line: string): string[] {
  if (Buffer.byteLength(line) > MAX_COMMAND_BYTES) throw new RefusedCommand(`cannot run command: longer than ${MAX_COMMAND_BYTES} bytes`);
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  while (i < line.length) {
    const ch = line[i]!;
    if (ch === ' ' || ch === '\t') {
      if (word !== null) words.push(word);
      word = null;
      i++;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      if (end < 0) throw new RefusedCommand(`cannot run command: unterminated ${ch === "'" ? 'single' : 'double'} quote`);
      const text = line.slice(i + 1, end);
      const bad = ch === '"' ? /[$`\\]/.exec(text) : null;
      if (bad) refuse(bad[0], 'inside double quotes');
      const ctl = CONTROL.exec(text);
      if (ctl) refuse(ctl[0], 'inside quotes');
      word = (word ?? '') + text;
      i = end + 1;
      continue;
    }
    if (!UNQUOTED.test(ch)) refuse(ch, 'outside quotes');
    word = (word ?? '') + ch;
    i++;
  }
  if (word !== null) words.push(word);
  return words;
}

/**
 * tuxsec-cli options that would point it at a socket or a config of the client's choosing
 * (`-s`/`--socket`, `--rootd-config`, `--agent-config`); the shell sets the socket itself.
 */
export function refuseCliOptions(args: string[]): void {
  for (const a of args) {
    if (a === '--') return;
    if (/^--(socket|rootd-config|agent-config)(=|$)/.test(a) || /^-[A-Za-z]*s/.test(a)) {
      throw new RefusedCommand(`cannot run command: option ${JSON.stringify(a.slice(0, 80))} is not allowed over SSH (the socket is set in shell.yaml)`);
    }
  }
}
