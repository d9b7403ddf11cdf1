/**
 * SELinux booleans: listed from the policy store by semanage (the kernel's values when SELinux
 * runs), set at runtime with setsebool, persistently with semanage boolean -m (which needs no
 * kernel: it changes the store, and the kernel too when SELinux runs).
 */
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import type { Deps } from './deps.ts';
import { page, parseBooleans, type BooleanEntry } from './semanage.ts';
import { kernelState, needsKernel } from './state.ts';
import { P } from './validate.ts';

export function booleanActions(d: Deps): AnyAction[] {
  const all = async (signal: AbortSignal): Promise<BooleanEntry[]> => parseBooleans(await d.tools.list('boolean', [], 'list SELinux booleans', signal));
  const one = async (name: string, signal: AbortSignal): Promise<BooleanEntry> => {
    const b = (await all(signal)).find((x) => x.name === name);
    if (!b) throw new TuxsecError(ErrorCodes.notFound, `cannot find SELinux boolean "${name}": the policy has no such boolean`);
    return b;
  };
  return [
    defineAction({
      name: 'list_booleans',
      description: 'List SELinux booleans with their current and persistent values and descriptions',
      params: Params({ filter: Type.Optional(P.filter()), limit: Type.Optional(P.limit()) }),
      access: 'read',
      shared: true,
      handler: async (p, ctx) => {
        const r = page(await all(ctx.signal), p.filter, p.limit, (b) => `${b.name} ${b.description}`);
        return { booleans: r.items, total: r.total, truncated: r.truncated, runtime: kernelState(d.paths).enabled };
      },
    }),
    defineAction({
      name: 'get_boolean',
      description: 'Get one SELinux boolean',
      params: Params({ name: P.boolean() }),
      access: 'read',
      shared: true,
      handler: async (p, ctx) => ({ ...(await one(p.name, ctx.signal)), runtime: kernelState(d.paths).enabled }),
    }),
    defineAction({
      name: 'set_boolean',
      description: 'Set an SELinux boolean at runtime, or with persistent in the policy store (and at runtime when SELinux runs)',
      params: Params({
        name: P.boolean(),
        value: Type.Boolean({ description: 'true for on, false for off' }),
        persistent: Type.Optional(Type.Boolean({ description: 'keep the value across reboots in the policy store (default false); works without SELinux in the kernel' })),
      }),
      access: 'write',
      handler: async (p, ctx) => {
        const k = kernelState(d.paths);
        const persistent = p.persistent ?? false;
        const what = `set SELinux boolean "${p.name}"`;
        if (!persistent) needsKernel({ ...k, reason: `${k.reason}; pass persistent: true to change the policy store only` }, `${what} at runtime`);
        const before = await one(p.name, ctx.signal);
        const changed = before.state !== p.value || (persistent && before.default !== p.value);
        if (changed) {
          const word = p.value ? 'on' : 'off';
          if (persistent) await d.tools.change('boolean', ['-m', `--${word}`, '--', p.name], what, ctx.signal);
          else await d.tools.exec('setsebool', ['--', p.name, word], what, { signal: ctx.signal });
        }
        return { name: p.name, value: p.value, persistent, changed, before: { state: before.state, default: before.default }, runtime: k.enabled };
      },
    }),
  ];
}
