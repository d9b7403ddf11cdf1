/**
 * restorecon: relabels a path (a tree with recursive) from the file context rules. Long-running:
 * a whole filesystem takes minutes. Without SELinux in the kernel restorecon does nothing and
 * says nothing, so it is refused rather than reported as done.
 */
import { lstat, readdir } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import type { Deps } from './deps.ts';
import { kernelState, needsKernel } from './state.ts';
import { P, checkPath } from './validate.ts';

/** Relabeled files listed in a result; the count covers them all. */
const MAX_LISTED = 1000;
const OUTPUT_CAP = 8 * 1024 * 1024;
/** Most lines one file name may span (each newline in it starts a line of restorecon's answer). */
const MAX_NAME_LINES = 64;

export interface Relabeled {
  path: string;
  from: string;
  to: string;
}

/** One record of restorecon -v: "Relabeled PATH from OLD to NEW" (contexts have no spaces; PATH may hold newlines). */
const RECORD_RE = /^(?:Would relabel|Relabeled) (.+) from (\S+) to (\S+)$/s;

/**
 * restorecon -v's answer, which prints each path as it is: a file name holding a newline
 * spans lines, and the text after its newline could read as a record of another file. A record
 * is kept only when its path exists under `root`; when a name with a newline could continue a
 * record's text (some entry of its directory starts so), the longest reading naming an existing
 * file wins, so a name's tail is never read as a record of its own. Lines that make no
 * record are counted in `unparsed`.
 */
export async function parseRelabeled(text: string, root: string): Promise<{ relabeled: Relabeled[]; unparsed: number }> {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const under = (p: string) => p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
  const exists = async (p: string) => under(p) && (await lstat(p).then(() => true, () => false));
  // Per directory, its entries whose names hold a newline (read once).
  const withNewline = new Map<string, Promise<string[]>>();
  const mayContinue = async (raw: string): Promise<boolean> => {
    const slash = raw.lastIndexOf('/');
    if (slash < 0) return false;
    const dir = raw.slice(0, slash) || '/';
    if (!under(dir)) return false;
    let names = withNewline.get(dir);
    if (!names) {
      names = readdir(dir).then((all) => all.filter((n) => n.includes('\n')), () => []);
      withNewline.set(dir, names);
    }
    const start = `${raw.slice(slash + 1)}\n`;
    return (await names).some((n) => n.startsWith(start));
  };
  const relabeled: Relabeled[] = [];
  let unparsed = 0;
  for (let i = 0; i < lines.length; ) {
    let best: Relabeled | null = null;
    let end = i;
    let joined = '';
    for (let j = i; j < lines.length && j < i + MAX_NAME_LINES; j++) {
      joined = j === i ? lines[i]! : `${joined}\n${lines[j]}`;
      const m = RECORD_RE.exec(joined);
      if (m && (await exists(m[1]!))) {
        best = { path: m[1]!, from: m[2]!, to: m[3]! };
        end = j;
      }
      // What follows the prefix is a path so far; only a name continuing it past a newline reads on.
      const raw = joined.replace(/^(?:Would relabel|Relabeled) /, '');
      if (raw === joined || !(await mayContinue(raw))) break;
    }
    if (best) {
      relabeled.push(best);
      i = end + 1;
    } else {
      unparsed++;
      i++;
    }
  }
  return { relabeled, unparsed };
}
export const RESTORECON_TIMEOUT_S = 6 * 3600;

export function restoreconActions(d: Deps): AnyAction[] {
  return [
    defineAction({
      name: 'restorecon',
      description: 'Restore the SELinux labels of a path (a whole tree with recursive) from the file context rules',
      params: Params({
        path: P.path(),
        recursive: Type.Optional(Type.Boolean({ description: 'relabel the whole tree under path (default false)' })),
        dry_run: Type.Optional(Type.Boolean({ description: 'report what would be relabeled without changing it (default false)' })),
        force: Type.Optional(Type.Boolean({ description: 'reset the whole context, not only the type, of customizable files too (restorecon -F, default false)' })),
      }),
      access: 'write',
      longRunning: { timeoutSeconds: RESTORECON_TIMEOUT_S },
      handler: async (p, ctx) => {
        const target = checkPath('path', p.path);
        needsKernel(kernelState(d.paths), 'restore SELinux labels');
        const args = ['-v', ...(p.recursive ? ['-R'] : []), ...(p.dry_run ? ['-n'] : []), ...(p.force ? ['-F'] : []), '--', target];
        ctx.progress('relabeling');
        const r = await d.tools.exec('restorecon', args, `restore SELinux labels of ${JSON.stringify(target)}`, {
          signal: ctx.signal,
          timeoutMs: RESTORECON_TIMEOUT_S * 1000,
          maxOutputBytes: OUTPUT_CAP,
        });
        const { relabeled, unparsed } = await parseRelabeled(r.stdout, target);
        if (unparsed > 0) ctx.log.warn({ path: target, lines: unparsed }, 'restorecon: lines of its answer that name no file under the path were left out');
        ctx.progress('done', 1);
        return {
          path: target,
          recursive: p.recursive ?? false,
          dry_run: p.dry_run ?? false,
          relabeled: relabeled.slice(0, MAX_LISTED),
          relabeled_count: relabeled.length,
          // Lines of restorecon's answer that named no existing file under path (left out).
          unparsed_lines: unparsed,
          // restorecon's report was cut at OUTPUT_CAP: the count is a lower bound.
          truncated: r.truncated || relabeled.length > MAX_LISTED,
        };
      },
    }),
  ];
}
