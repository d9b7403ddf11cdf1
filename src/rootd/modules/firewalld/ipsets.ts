/**
 * IPSets: definitions (permanent configuration) and entries (runtime by default).
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import type { Static } from '@sinclair/typebox';
import { IFACE } from './dbus.ts';
import { IPSET, listNames, readSettings } from './objects.ts';
import { ipsetInfo } from './info.ts';
import { R } from './signature.ts';
import { applyIdem, createDelete, reader, where, write, writeParams, type Deps } from './common.ts';
import { P, checkIpsetEntry } from './validate.ts';

function entryOps(d: Deps, ipset: string, entry: string, permanent?: boolean) {
  const label = `entry "${entry}" of ipset "${ipset}" (${where(permanent)})`;
  const call = async (member: string, msg: string) =>
    permanent
      ? { path: await d.fw.mustConfigPath('ipset', ipset), iface: IFACE.configIpset, member, signature: 's', body: [entry], what: msg }
      : { iface: IFACE.ipset, member, signature: 'ss', body: [ipset, entry], what: msg };
  return {
    label,
    query: async () => d.fw.get(await call('queryEntry', `query ${label}`), R.bool),
    add: async () => d.fw.call(await call('addEntry', `add ${label}`)),
    remove: async () => d.fw.call(await call('removeEntry', `remove ${label}`)),
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
  const ipset = { ipset: P.ipset() };
  return [
    reader('list_ipsets', 'List all IPSets', { permanent: P.permanent() }, async (p) => ({ ipsets: await listNames(d.fw, IPSET, p.permanent) })),
    reader('get_ipset_info', 'Get detailed information about an IPSet', { ...ipset, permanent: P.permanent() }, async (p) =>
      ipsetInfo(p.ipset, p.permanent === true, (await readSettings(d.fw, IPSET, p.ipset, p.permanent)) as Static<typeof R.ipset>),
    ),
    ...createDelete(d, IPSET, {
      create: ['new_ipset', 'Create a new IPSet (permanent configuration; reload to use it at runtime)', { ...ipset, type: P.ipsetType() }],
      delete: ['delete_ipset', 'Delete an IPSet (permanent configuration)', ipset],
      settings: (p) => ['', '', '', p.type, {}, []],
      detail: (p) => ` of type "${String(p.type)}"`,
    }),
    defineAction({ name: 'ipset_add_entry', description: 'Add entry to an IPSet', params: entryP, access: 'write', handler: (p) => toggle(p, true) }),
    defineAction({ name: 'ipset_remove_entry', description: 'Remove entry from an IPSet', params: entryP, access: 'write', handler: (p) => toggle(p, false) }),
  ];
}
