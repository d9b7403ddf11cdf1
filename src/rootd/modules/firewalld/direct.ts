/**
 * Direct chains, rules and passthroughs: iptables arguments that firewalld runs as root, so all
 * of them are in the `dangerous` class, and every argument is checked against an allowlist
 * (iptables-args.ts) before the call. Arguments go to firewalld as a string array, never joined
 * into a command line.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE, unwrap } from './dbus.ts';
import { applyIdem, where, write, writeParams, type Deps } from './common.ts';
import { P } from './validate.ts';
import { checkIptablesArgs, type ArgsFamily } from './iptables-args.ts';

const iface = (permanent?: boolean) => (permanent ? IFACE.configDirect : IFACE.direct);

export function directActions(d: Deps): AnyAction[] {
  const call = (permanent: boolean | undefined, member: string, sig: string, body: unknown[], what: string) =>
    permanent ? d.fw.cfg(IFACE.configDirect, member, sig, body, what) : d.fw.rt(IFACE.direct, member, sig, body, what);
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
        check: async () => (await call(p.permanent, 'queryChain', 'sss', body, what))[0] !== want,
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
        check: async () => (await call(p.permanent, 'queryRule', 'sssias', body, what))[0] !== want,
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
        check: async () => ((await call(p.permanent, 'queryPassthrough', 'sas', body, what))[0] === true) !== want,
        apply: () => applyIdem(() => call(p.permanent, want ? 'addPassthrough' : 'removePassthrough', 'sas', body, what)),
      },
      p,
    );
  };
  return [
    defineAction({
      name: 'direct_get_all_chains',
      description: 'Get all direct chains (of one ipv and table)',
      params: Params({ ipv: P.ipv(), table: P.table(), permanent: P.permanent() }),
      access: 'dangerous',
      handler: async (p) => ({
        ipv: p.ipv,
        table: p.table,
        chains: ((await call(p.permanent, 'getChains', 'ss', [p.ipv, p.table], 'list direct chains'))[0] as string[]).map(String),
      }),
    }),
    defineAction({ name: 'direct_add_chain', description: 'Add a new direct chain', params: chainP, access: 'dangerous', handler: (p) => chainToggle(p, true) }),
    defineAction({ name: 'direct_remove_chain', description: 'Remove a direct chain', params: chainP, access: 'dangerous', handler: (p) => chainToggle(p, false) }),
    defineAction({
      name: 'direct_get_all_rules',
      description: 'Get all direct rules',
      params: Params({ permanent: P.permanent() }),
      access: 'dangerous',
      handler: async (p) => ({
        rules: (unwrap((await d.fw.call('/org/fedoraproject/FirewallD1' + (p.permanent ? '/config' : ''), iface(p.permanent), 'getAllRules', '', [], 'list direct rules'))[0]) as unknown[][]).map(
          ([ipv, table, chain, priority, args]) => ({ ipv, table, chain, priority, args }),
        ),
      }),
    }),
    defineAction({ name: 'direct_add_rule', description: 'Add a direct rule', params: ruleP, access: 'dangerous', handler: (p) => ruleToggle(p, true) }),
    defineAction({ name: 'direct_remove_rule', description: 'Remove a direct rule', params: ruleP, access: 'dangerous', handler: (p) => ruleToggle(p, false) }),
    defineAction({
      name: 'direct_get_passthrough',
      description: 'Get all passthrough rules',
      params: Params({ ipv: P.ipv(), permanent: P.permanent() }),
      access: 'dangerous',
      handler: async (p) => ({ ipv: p.ipv, passthroughs: unwrap((await call(p.permanent, 'getPassthroughs', 's', [p.ipv], 'list passthroughs'))[0]) }),
    }),
    defineAction({ name: 'direct_add_passthrough', description: 'Add a passthrough rule', params: passthroughP, access: 'dangerous', handler: (p) => passthroughToggle(p, true) }),
    defineAction({ name: 'direct_remove_passthrough', description: 'Remove a passthrough rule', params: passthroughP, access: 'dangerous', handler: (p) => passthroughToggle(p, false) }),
  ];
}
