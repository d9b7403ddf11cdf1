/**
 * IPSets: definitions (permanent configuration) and entries (runtime by default).
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE, unwrap } from './dbus.ts';
import { applyIdem, createPermanent, deletePermanent, where, write, writeParams, type Deps } from './common.ts';
import { P, checkIpsetEntry } from './validate.ts';

function ipsetInfo(name: string, permanent: boolean, raw: unknown) {
  const [version, short, description, type, options, entries] = (unwrap(raw) ?? []) as [string, string, string, string, Record<string, string>, string[]];
  return { name, permanent, version, short, description, type, options: options ?? {}, entries: entries ?? [] };
}

function entryOps(d: Deps, ipset: string, entry: string, permanent?: boolean) {
  const label = `entry "${entry}" of ipset "${ipset}" (${where(permanent)})`;
  if (permanent) {
    const path = () => d.fw.mustConfigPath('ipset', ipset);
    return {
      label,
      query: async () => (await d.fw.call(await path(), IFACE.configIpset, 'queryEntry', 's', [entry], `query ${label}`))[0] === true,
      add: async () => d.fw.call(await path(), IFACE.configIpset, 'addEntry', 's', [entry], `add ${label}`),
      remove: async () => d.fw.call(await path(), IFACE.configIpset, 'removeEntry', 's', [entry], `remove ${label}`),
    };
  }
  return {
    label,
    query: async () => (await d.fw.rt(IFACE.ipset, 'queryEntry', 'ss', [ipset, entry], `query ${label}`))[0] === true,
    add: () => d.fw.rt(IFACE.ipset, 'addEntry', 'ss', [ipset, entry], `add ${label}`),
    remove: () => d.fw.rt(IFACE.ipset, 'removeEntry', 'ss', [ipset, entry], `remove ${label}`),
  };
}

export function ipsetActions(d: Deps): AnyAction[] {
  const entryP = writeParams({ ipset: P.ipset(), entry: P.ipsetEntry() }, { permanent: true });
  const toggle = (p: { ipset: string; entry: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number }, want: boolean) => {
    checkIpsetEntry('entry', p.entry);
    const ops = entryOps(d, p.ipset, p.entry, p.permanent);
    return write(
      d,
      {
        what: `${want ? 'add' : 'remove'} ${ops.label}`,
        scopes: [{ kind: 'ipset', name: p.ipset }],
        check: async () => (await ops.query()) !== want,
        apply: () => applyIdem(want ? ops.add : ops.remove),
      },
      p,
    );
  };
  return [
    defineAction({
      name: 'list_ipsets',
      description: 'List all IPSets',
      params: Params({ permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ ipsets: ((p.permanent ? await d.fw.cfg(IFACE.config, 'getIPSetNames') : await d.fw.rt(IFACE.ipset, 'getIPSets'))[0] as string[]).map(String) }),
    }),
    defineAction({
      name: 'get_ipset_info',
      description: 'Get detailed information about an IPSet',
      params: Params({ ipset: P.ipset(), permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => {
        if (p.permanent) {
          const path = await d.fw.mustConfigPath('ipset', p.ipset);
          return ipsetInfo(p.ipset, true, (await d.fw.call(path, IFACE.configIpset, 'getSettings', '', [], `read ipset "${p.ipset}"`))[0]);
        }
        return ipsetInfo(p.ipset, false, (await d.fw.rt(IFACE.ipset, 'getIPSetSettings', 's', [p.ipset], `read ipset "${p.ipset}"`))[0]);
      },
    }),
    defineAction({
      name: 'new_ipset',
      description: 'Create a new IPSet (permanent configuration; reload to use it at runtime)',
      params: writeParams({ ipset: P.ipset(), type: P.ipsetType() }),
      access: 'write',
      handler: (p) =>
        createPermanent(d, p, {
          kind: 'ipset',
          name: p.ipset,
          method: 'addIPSet',
          signature: 's(ssssa{ss}as)',
          args: [p.ipset, ['', '', '', p.type, {}, []]],
          detail: ` of type "${p.type}"`,
        }),
    }),
    defineAction({
      name: 'delete_ipset',
      description: 'Delete an IPSet (permanent configuration)',
      params: writeParams({ ipset: P.ipset() }),
      access: 'write',
      handler: (p) => deletePermanent(d, p, { kind: 'ipset', name: p.ipset, iface: IFACE.configIpset }),
    }),
    defineAction({ name: 'ipset_add_entry', description: 'Add entry to an IPSet', params: entryP, access: 'write', handler: (p) => toggle(p, true) }),
    defineAction({ name: 'ipset_remove_entry', description: 'Remove entry from an IPSet', params: entryP, access: 'write', handler: (p) => toggle(p, false) }),
  ];
}
