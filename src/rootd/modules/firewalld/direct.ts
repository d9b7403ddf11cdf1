/**
 * Direct chains, rules and passthroughs: iptables arguments that firewalld runs as root, so all
 * of them are in the `dangerous` class, and every argument is checked against an allowlist
 * (iptables-args.ts) before the call. Arguments go to firewalld as a string array, never joined
 * into a command line.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Type } from '@sinclair/typebox';
import { IFACE } from './dbus.ts';
import { applyIdem, on, reader, where, write, writeParams, type Deps } from './common.ts';
import { R } from './signature.ts';
import { P } from './validate.ts';
import { checkIptablesArgs, type ArgsFamily } from './iptables-args.ts';

/** `getAllRules`: (ipv, table, chain, priority, args) tuples. */
const RULES = Type.Array(Type.Tuple([Type.String(), Type.String(), Type.String(), Type.Integer(), Type.Array(Type.String())]));
/** `getPassthroughs`: argument lists. */
const PASSTHROUGHS = Type.Array(Type.Array(Type.String()));

export function directActions(d: Deps): AnyAction[] {
  const at = (permanent: boolean | undefined, member: string, signature: string, body: unknown[], what: string) => ({
    ...on(permanent, IFACE.direct, IFACE.configDirect),
    member,
    signature,
    body,
    what,
  });
  const query = async (...a: Parameters<typeof at>) => d.fw.get(at(...a), R.bool);
  const call = (...a: Parameters<typeof at>) => d.fw.call(at(...a));
  const chainP = writeParams({ ipv: P.ipv(), table: P.table(), chain: P.chain() }, { permanent: true, confirm: false });
  const ruleP = writeParams({ ipv: P.ipv(), table: P.table(), chain: P.chain(), priority: P.priority(), args: P.args() }, { permanent: true, confirm: false });
  const chainToggle = (p: { ipv: string; table: string; chain: string; permanent?: boolean; dry_run?: boolean }, want: boolean) => {
    const what = `${want ? 'add' : 'remove'} direct chain "${p.chain}" (${p.ipv} ${p.table}, ${where(p.permanent)})`;
    const body = [p.ipv, p.table, p.chain];
    return write(
      d,
      {
        what,
        scopes: [],
        check: async () => (await query(p.permanent, 'queryChain', 'sss', body, what)) !== want,
        apply: () => applyIdem(() => call(p.permanent, want ? 'addChain' : 'removeChain', 'sss', body, what)),
      },
      p,
    );
  };
  const ruleToggle = (p: { ipv: string; table: string; chain: string; priority: number; args: string[]; permanent?: boolean; dry_run?: boolean }, want: boolean) => {
    checkIptablesArgs('args', p.args, { mode: 'rule', family: p.ipv as ArgsFamily });
    const what = `${want ? 'add' : 'remove'} direct rule in chain "${p.chain}" (${p.ipv} ${p.table} priority ${p.priority}, ${where(p.permanent)})`;
    const body = [p.ipv, p.table, p.chain, p.priority, p.args];
    return write(
      d,
      {
        what,
        scopes: [],
        check: async () => (await query(p.permanent, 'queryRule', 'sssias', body, what)) !== want,
        apply: () => applyIdem(() => call(p.permanent, want ? 'addRule' : 'removeRule', 'sssias', body, what)),
      },
      p,
    );
  };
  const passthroughP = writeParams({ ipv: P.ipv(), args: P.args() }, { permanent: true, confirm: false });
  const passthroughToggle = (p: { ipv: string; args: string[]; permanent?: boolean; dry_run?: boolean }, want: boolean) => {
    checkIptablesArgs('args', p.args, { mode: 'passthrough', family: p.ipv as ArgsFamily });
    const what = `${want ? 'add' : 'remove'} passthrough (${p.ipv}, ${where(p.permanent)})`;
    const body = [p.ipv, p.args];
    return write(
      d,
      {
        what,
        scopes: [],
        check: async () => (await query(p.permanent, 'queryPassthrough', 'sas', body, what)) !== want,
        apply: () => applyIdem(() => call(p.permanent, want ? 'addPassthrough' : 'removePassthrough', 'sas', body, what)),
      },
      p,
    );
  };
  return [
    reader('direct_get_all_chains', 'Get all direct chains (of one ipv and table)', { ipv: P.ipv(), table: P.table(), permanent: P.permanent() }, async (p) => ({
      ipv: p.ipv,
      table: p.table,
      chains: await d.fw.get(at(p.permanent, 'getChains', 'ss', [p.ipv, p.table], 'list direct chains'), R.strings),
    }), 'dangerous'),
    defineAction({ name: 'direct_add_chain', description: 'Add a new direct chain', params: chainP, access: 'dangerous', handler: (p) => chainToggle(p, true) }),
    defineAction({ name: 'direct_remove_chain', description: 'Remove a direct chain', params: chainP, access: 'dangerous', handler: (p) => chainToggle(p, false) }),
    reader('direct_get_all_rules', 'Get all direct rules', { permanent: P.permanent() }, async (p) => ({
      rules: (await d.fw.get(at(p.permanent, 'getAllRules', '', [], 'list direct rules'), RULES)).map(([ipv, table, chain, priority, args]) => ({ ipv, table, chain, priority, args })),
    }), 'dangerous'),
    defineAction({ name: 'direct_add_rule', description: 'Add a direct rule', params: ruleP, access: 'dangerous', handler: (p) => ruleToggle(p, true) }),
    defineAction({ name: 'direct_remove_rule', description: 'Remove a direct rule', params: ruleP, access: 'dangerous', handler: (p) => ruleToggle(p, false) }),
    reader('direct_get_passthrough', 'Get all passthrough rules', { ipv: P.ipv(), permanent: P.permanent() }, async (p) => ({ ipv: p.ipv, passthroughs: await d.fw.get(at(p.permanent, 'getPassthroughs', 's', [p.ipv], 'list passthroughs'), PASSTHROUGHS) }), 'dangerous'),
    defineAction({ name: 'direct_add_passthrough', description: 'Add a passthrough rule', params: passthroughP, access: 'dangerous', handler: (p) => passthroughToggle(p, true) }),
    defineAction({ name: 'direct_remove_passthrough', description: 'Remove a passthrough rule', params: passthroughP, access: 'dangerous', handler: (p) => passthroughToggle(p, false) }),
  ];
}
