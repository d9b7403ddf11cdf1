/**
 * Policies (inter-zone rules): listing, creation and deletion (permanent configuration),
 * ingress/egress zones and target.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { IFACE } from './dbus.ts';
import { applyIdem, createDelete, reader, where, write, writeParams, type Deps } from './common.ts';
import { POLICY, POLICY_DEFAULTS, complete, info, listNames, readSettings } from './objects.ts';
import { toVariantDict } from './signature.ts';
import { P, invalid } from './validate.ts';

async function rawPolicy(d: Deps, policy: string, permanent?: boolean): Promise<Record<string, unknown>> {
  return (await readSettings(d.fw, POLICY, policy, permanent)) as Record<string, unknown>;
}

/** Sets one key of a policy (runtime: only that key; permanent: whole settings updated). */
function setPolicyKey(d: Deps, p: { policy: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number }, key: string, value: unknown, label: string) {
  const what = `set ${label} of policy "${p.policy}" to ${JSON.stringify(value)} (${where(p.permanent)})`;
  return write(
    d,
    {
      what,
      scopes: [{ kind: 'policy', name: p.policy }],
      check: async () => JSON.stringify((await rawPolicy(d, p.policy, p.permanent))[key] ?? POLICY_DEFAULTS[key]) !== JSON.stringify(value),
      apply: async () => {
        if (p.permanent) {
          const path = await d.fw.mustConfigPath('policy', p.policy);
          const full = complete(await rawPolicy(d, p.policy, true), POLICY_DEFAULTS);
          full[key] = value;
          await d.fw.call({ path, iface: IFACE.configPolicy, member: 'update', signature: 'a{sv}', body: [toVariantDict(full)], what });
          return true;
        }
        return applyIdem(() => d.fw.call({ iface: IFACE.policy, member: 'setPolicySettings', signature: 'sa{sv}', body: [p.policy, toVariantDict({ [key]: value })], what }));
      },
    },
    p,
  );
}

export function policyActions(d: Deps): AnyAction[] {
  const pol = { policy: P.policy() };
  const zone = writeParams({ ...pol, zone: P.zone() }, { permanent: true });
  return [
    reader('list_policies', 'List all firewall policies', { permanent: P.permanent() }, async (p) => ({ policies: await listNames(d.fw, POLICY, p.permanent) })),
    reader('policy_get_info', 'Get detailed information about a policy', { ...pol, permanent: P.permanent() }, async (p) =>
      info(POLICY, p.policy, p.permanent === true, await rawPolicy(d, p.policy, p.permanent)),
    ),
    ...createDelete(d, POLICY, {
      create: ['policy_add', 'Add a new firewall policy (permanent configuration; reload to use it at runtime)', pol],
      delete: ['policy_delete', 'Delete a firewall policy (permanent configuration)', pol],
      permanent: true,
    }),
    defineAction({ name: 'policy_set_ingress_zone', description: 'Set ingress zone for policy ("ANY" and "HOST" are allowed)', params: zone, access: 'write', handler: (p) => setPolicyKey(d, p, 'ingress_zones', [p.zone], 'ingress zones') }),
    defineAction({ name: 'policy_set_egress_zone', description: 'Set egress zone for policy ("ANY" and "HOST" are allowed)', params: zone, access: 'write', handler: (p) => setPolicyKey(d, p, 'egress_zones', [p.zone], 'egress zones') }),
    defineAction({
      name: 'policy_set_target',
      description: 'Set target action for policy (permanent configuration only: firewalld cannot change it at runtime)',
      params: writeParams({ ...pol, target: P.policyTarget() }, { permanent: true }),
      access: 'write',
      handler: (p) => {
        if (p.permanent !== true) invalid('permanent', p.permanent ?? false, 'firewalld changes a policy target only in the permanent configuration; pass permanent: true');
        return setPolicyKey(d, p, 'target', p.target, 'target');
      },
    }),
  ];
}
