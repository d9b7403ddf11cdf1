/**
 * restorecon: relabels a path (a tree with recursive) from the file context rules. Long-running:
 * a whole filesystem takes minutes. Without SELinux in the kernel restorecon does nothing and
 * says nothing, so it is refused rather than reported as done.
 */
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import type { Deps } from './deps.ts';
import { parseRelabeled } from './semanage.ts';
import { kernelState, needsKernel } from './state.ts';
import { P, checkPath } from './validate.ts';

/** Relabeled files listed in a result; the count covers them all. */
const MAX_LISTED = 1000;
const OUTPUT_CAP = 8 * 1024 * 1024;
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
        const relabeled = parseRelabeled(r.stdout);
        ctx.progress('done', 1);
        return {
          path: target,
          recursive: p.recursive ?? false,
          dry_run: p.dry_run ?? false,
          relabeled: relabeled.slice(0, MAX_LISTED),
          relabeled_count: relabeled.length,
          // restorecon's report was cut at OUTPUT_CAP: the count is a lower bound.
          truncated: r.truncated || relabeled.length > MAX_LISTED,
        };
      },
    }),
  ];
}
