/**
 * Lockdown: who may talk to firewalld. Every lockdown_* action is in the `dangerous` class.
 * Whitelist edits are runtime by default, `permanent: true` edits the configuration.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE } from './dbus.ts';
import { applyIdem, on, reader, where, write, writeParams, type Deps } from './common.ts';
import { R } from './signature.ts';

const INTEGERS = Type.Array(Type.Integer());
import { P } from './validate.ts';

interface Kind {
  plural: string;
  stem: string;
  param: 'command' | 'context' | 'user' | 'uid';
  schema: () => TSchema;
  sig: 's' | 'i';
}

const KINDS: Kind[] = [
  { plural: 'commands', stem: 'Command', param: 'command', schema: P.command, sig: 's' },
  { plural: 'contexts', stem: 'Context', param: 'context', schema: P.context, sig: 's' },
  { plural: 'users', stem: 'User', param: 'user', schema: P.user, sig: 's' },
  { plural: 'uids', stem: 'Uid', param: 'uid', schema: P.uid, sig: 'i' },
];

export function lockdownActions(d: Deps): AnyAction[] {
  const at = (permanent: boolean | undefined, member: string, signature = '', body: unknown[] = [], what = member) => ({
    ...on(permanent, IFACE.policies, IFACE.configPolicies),
    member,
    signature,
    body,
    what,
  });
  const enabled = () => d.fw.get({ iface: IFACE.policies, member: 'queryLockdown' }, R.bool);
  const out: AnyAction[] = [
    reader('lockdown_get_status', 'Get lockdown mode status', {}, async () => ({ enabled: await enabled() }), 'dangerous'),
  ];
  for (const want of [true, false]) {
    out.push(
      defineAction({
        name: want ? 'lockdown_enable' : 'lockdown_disable',
        description: want ? 'Enable lockdown mode' : 'Disable lockdown mode',
        params: writeParams({}, { confirm: false }),
        access: 'dangerous',
        handler: (p) =>
          write(
            d,
            {
              what: `${want ? 'enable' : 'disable'} lockdown`,
              scopes: [],
              check: async () => (await enabled()) !== want,
              apply: () => applyIdem(() => d.fw.call({ iface: IFACE.policies, member: want ? 'enableLockdown' : 'disableLockdown' })),
            },
            p,
          ),
      }),
    );
  }
  for (const k of KINDS) {
    out.push(
      defineAction({
        name: `lockdown_list_${k.plural}`,
        description: `List whitelisted ${k.plural === 'contexts' ? 'SELinux contexts' : k.plural === 'uids' ? 'UIDs' : k.plural}`,
        params: Params({ permanent: P.permanent() }),
        access: 'dangerous',
        handler: async (p) => ({ [k.plural]: await d.fw.get(at(p.permanent, `getLockdownWhitelist${k.stem}s`), k.sig === 's' ? R.strings : INTEGERS) }),
      }),
    );
    for (const want of [true, false]) {
      out.push(
        defineAction({
          name: `lockdown_${want ? 'add' : 'remove'}_${k.param === 'uid' ? 'uid' : k.param}`,
          description: `${want ? 'Add' : 'Remove'} ${k.param === 'context' ? 'SELinux context' : k.param === 'uid' ? 'UID' : k.param} ${want ? 'to' : 'from'} whitelist`,
          params: writeParams({ [k.param]: k.schema() }, { permanent: true, confirm: false }),
          access: 'dangerous',
          handler: (p: Record<string, unknown>) => {
            const v = p[k.param];
            const what = `${want ? 'add' : 'remove'} lockdown whitelist ${k.param} ${JSON.stringify(v)} (${where(p.permanent as boolean | undefined)})`;
            const perm = p.permanent as boolean | undefined;
            return write(
              d,
              {
                what,
                scopes: [],
                check: async () => (await d.fw.get(at(perm, `queryLockdownWhitelist${k.stem}`, k.sig, [v], what), R.bool)) !== want,
                apply: () => applyIdem(() => d.fw.call(at(perm, `${want ? 'add' : 'remove'}LockdownWhitelist${k.stem}`, k.sig, [v], what))),
              },
              p as { dry_run?: boolean },
            );
          },
        }),
      );
    }
  }
  return out;
}
