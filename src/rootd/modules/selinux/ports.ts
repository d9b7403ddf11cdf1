/**
 * Port labels of the policy store (semanage port): which port type a port number carries.
 * They live in the store, so they work without SELinux in the kernel.
 */
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { checkPortRange } from '../firewalld/validate.ts';
import type { Deps } from './deps.ts';
import { page, parsePorts, type PortEntry } from './semanage.ts';
import { P } from './validate.ts';

/** True when `port` (a number) falls in one of the entry's ports or ranges. */
function covers(e: PortEntry, port: number): boolean {
  return e.ports.some((r) => {
    const [lo, hi] = r.split('-').map(Number);
    return port >= lo! && port <= (hi ?? lo)!;
  });
}

export function portActions(d: Deps): AnyAction[] {
  return [
    defineAction({
      name: 'list_ports',
      description: 'List port labels: SELinux port type, protocol and ports',
      params: Params({
        local_only: Type.Optional(P.localOnly()),
        type: Type.Optional(P.type('port type')),
        protocol: Type.Optional(P.protocol()),
        port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'only entries that cover this port' })),
        limit: Type.Optional(P.limit()),
      }),
      access: 'read',
      shared: true,
      handler: async (p, ctx) => {
        const all = parsePorts(await d.tools.list('port', p.local_only ? ['-C'] : [], 'list SELinux port labels', ctx.signal));
        const matching = all.filter((e) => (!p.type || e.type === p.type) && (!p.protocol || e.protocol === p.protocol) && (p.port === undefined || covers(e, p.port)));
        const r = page(matching, undefined, p.limit, () => '');
        return { ports: r.items, total: r.total, truncated: r.truncated };
      },
    }),
    defineAction({
      name: 'add_port',
      description: 'Label a port or range with an SELinux port type in the policy store (semanage port -a)',
      params: Params({ type: P.type('port type'), port: P.port(), protocol: P.protocol() }),
      access: 'write',
      handler: async (p, ctx) => {
        const port = checkPortRange('port', p.port);
        await d.tools.change('port', ['-a', '-t', p.type, '-p', p.protocol, '--', port], `add SELinux port label ${port}/${p.protocol}`, ctx.signal);
        return { type: p.type, port, protocol: p.protocol, changed: true };
      },
    }),
    defineAction({
      name: 'delete_port',
      description: 'Remove a local port label from the policy store (semanage port -d)',
      params: Params({ port: P.port(), protocol: P.protocol() }),
      access: 'write',
      handler: async (p, ctx) => {
        const port = checkPortRange('port', p.port);
        await d.tools.change('port', ['-d', '-p', p.protocol, '--', port], `delete SELinux port label ${port}/${p.protocol}`, ctx.signal);
        return { port, protocol: p.protocol, changed: true };
      },
    }),
  ];
}
