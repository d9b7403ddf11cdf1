/**
 * Policies (inter-zone rules): listing, creation and deletion (permanent configuration),
 * ingress/egress zones and target.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE, toVariantDict, unwrap } from './dbus.ts';
import { applyIdem, createPermanent, deletePermanent, forwardPorts, portProtos, strs, where, write, writeParams, type Deps } from './common.ts';
import { POLICY_PERM_KEYS as POLICY_DEFAULTS, complete } from './safety.ts';
import { P, invalid } from './validate.ts';

function policyInfo(name: string, permanent: boolean, raw: unknown) {
  const s = (unwrap(raw) ?? {}) as Record<string, unknown>;
  return {
    name,
    permanent,
    short: String(s.short ?? ''),
    description: String(s.description ?? ''),
    target: String(s.target ?? 'CONTINUE'),
    priority: Number(s.priority ?? -1),
    ingress_zones: strs(s.ingress_zones),
    egress_zones: strs(s.egress_zones),
    services: strs(s.services),
    ports: portProtos(s.ports),
    protocols: strs(s.protocols),
    source_ports: portProtos(s.source_ports),
    icmp_blocks: strs(s.icmp_blocks),
    masquerade: s.masquerade === true,
    forward_ports: forwardPorts(s.forward_ports),
    rich_rules: strs(s.rich_rules),
  };
}

async function rawPolicy(d: Deps, policy: string, permanent?: boolean): Promise<Record<string, unknown>> {
  if (permanent) {
    const path = await d.fw.mustConfigPath('policy', policy);
    return unwrap((await d.fw.call(path, IFACE.configPolicy, 'getSettings', '', [], `read policy "${policy}"`))[0]) as Record<string, unknown>;
  }
  return unwrap((await d.fw.rt(IFACE.policy, 'getPolicySettings', 's', [policy], `read policy "${policy}"`))[0]) as Record<string, unknown>;
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
          await d.fw.call(path, IFACE.configPolicy, 'update', 'a{sv}', [toVariantDict(full)], what);
          return true;
        }
        return applyIdem(() => d.fw.rt(IFACE.policy, 'setPolicySettings', 'sa{sv}', [p.policy, toVariantDict({ [key]: value })], what));
      },
    },
    p,
  );
}

export function policyActions(d: Deps): AnyAction[] {
  const pol = { policy: P.policy() };
  return [
    defineAction({
      name: 'list_policies',
      description: 'List all firewall policies',
      params: Params({ permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ policies: strs((p.permanent ? await d.fw.cfg(IFACE.config, 'getPolicyNames') : await d.fw.rt(IFACE.policy, 'getPolicies'))[0]) }),
    }),
    defineAction({
      name: 'policy_get_info',
      description: 'Get detailed information about a policy',
      params: Params({ ...pol, permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => policyInfo(p.policy, p.permanent === true, await rawPolicy(d, p.policy, p.permanent)),
    }),
    defineAction({
      name: 'policy_add',
      description: 'Add a new firewall policy (permanent configuration; reload to use it at runtime)',
      params: writeParams(pol, { permanent: true }),
      access: 'write',
      handler: async (p) => ({
        ...(await createPermanent(d, p, { kind: 'policy', name: p.policy, method: 'addPolicy', signature: 'sa{sv}', args: [p.policy, {}] })),
        permanent: true,
      }),
    }),
    defineAction({
      name: 'policy_delete',
      description: 'Delete a firewall policy (permanent configuration)',
      params: writeParams(pol, { permanent: true }),
      access: 'write',
      handler: async (p) => ({ ...(await deletePermanent(d, p, { kind: 'policy', name: p.policy, iface: IFACE.configPolicy })), permanent: true }),
    }),
    defineAction({
      name: 'policy_set_ingress_zone',
      description: 'Set ingress zone for policy ("ANY" and "HOST" are allowed)',
      params: writeParams({ ...pol, zone: P.zone() }, { permanent: true }),
      access: 'write',
      handler: (p) => setPolicyKey(d, p, 'ingress_zones', [p.zone], 'ingress zones'),
    }),
    defineAction({
      name: 'policy_set_egress_zone',
      description: 'Set egress zone for policy ("ANY" and "HOST" are allowed)',
      params: writeParams({ ...pol, zone: P.zone() }, { permanent: true }),
      access: 'write',
      handler: (p) => setPolicyKey(d, p, 'egress_zones', [p.zone], 'egress zones'),
    }),
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
