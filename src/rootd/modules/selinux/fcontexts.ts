/**
 * File context rules of the policy store (semanage fcontext): what restorecon labels a path with.
 * They live in the store, so they work without SELinux in the kernel.
 */
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import type { Deps } from './deps.ts';
import { page, parseFcontexts } from './semanage.ts';
import { P } from './validate.ts';

export function fcontextActions(d: Deps): AnyAction[] {
  return [
    defineAction({
      name: 'list_file_contexts',
      description: 'List file context rules (path regular expression, file type, context) and path equivalences',
      params: Params({ local_only: Type.Optional(P.localOnly()), filter: Type.Optional(P.filter()), limit: Type.Optional(P.limit()) }),
      access: 'read',
      shared: true,
      handler: async (p, ctx) => {
        const text = await d.tools.list('fcontext', p.local_only ? ['-C'] : [], 'list SELinux file contexts', ctx.signal);
        const { entries, equivalences } = parseFcontexts(text);
        const r = page(entries, p.filter, p.limit, (e) => `${e.spec} ${e.context ?? '<<None>>'}`);
        const eq = page(equivalences, p.filter, p.limit, (e) => `${e.spec} ${e.equal}`);
        return { file_contexts: r.items, total: r.total, truncated: r.truncated || eq.truncated, equivalences: eq.items };
      },
    }),
    defineAction({
      name: 'add_file_context',
      description: 'Add a file context rule to the policy store (semanage fcontext -a); run restorecon to apply it to files',
      params: Params({ spec: P.fileSpec(), type: P.type(), ftype: Type.Optional(P.ftype()), range: Type.Optional(P.range()) }),
      access: 'write',
      handler: async (p, ctx) => {
        const args = ['-a', '-t', p.type, ...(p.ftype ? ['-f', p.ftype] : []), ...(p.range ? ['-r', p.range] : []), '--', p.spec];
        await d.tools.change('fcontext', args, `add SELinux file context ${JSON.stringify(p.spec)}`, ctx.signal);
        return { spec: p.spec, type: p.type, ftype: p.ftype ?? 'a', changed: true };
      },
    }),
    defineAction({
      name: 'delete_file_context',
      description: 'Delete a local file context rule from the policy store (semanage fcontext -d)',
      params: Params({ spec: P.fileSpec(), ftype: Type.Optional(P.ftype()) }),
      access: 'write',
      handler: async (p, ctx) => {
        await d.tools.change('fcontext', ['-d', ...(p.ftype ? ['-f', p.ftype] : []), '--', p.spec], `delete SELinux file context ${JSON.stringify(p.spec)}`, ctx.signal);
        return { spec: p.spec, ftype: p.ftype ?? 'a', changed: true };
      },
    }),
  ];
}
