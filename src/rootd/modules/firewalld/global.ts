/**
 * Daemon-wide actions: status, version, reloads, panic mode, log-denied, drift detection
 * (state hash and recorded signals) and confirmation of pending changes.
 */
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { FW_CONFIG_PATH, FW_PATH, IFACE, unwrap } from './dbus.ts';
import { applyIdem, write, writeParams, type Deps } from './common.ts';
import { listZones, readZone } from './zones.ts';
import { P } from './validate.ts';

/** Canonical JSON: object keys sorted, so equal states hash equally. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Everything firewalld enforces, as one JSON-able object (runtime or permanent). */
export async function readState(d: Deps, permanent?: boolean): Promise<Record<string, unknown>> {
  const zones: Record<string, unknown> = {};
  for (const z of (await listZones(d, permanent)).sort()) {
    const info = await readZone(d, z, permanent);
    info.services.sort();
    info.interfaces.sort();
    info.sources.sort();
    info.rich_rules.sort();
    zones[z] = info;
  }
  const policies: Record<string, unknown> = {};
  const ipsets: Record<string, unknown> = {};
  if (permanent) {
    for (const n of ((await d.fw.cfg(IFACE.config, 'getPolicyNames'))[0] as string[]).sort()) {
      policies[n] = unwrap((await d.fw.call(await d.fw.mustConfigPath('policy', n), IFACE.configPolicy, 'getSettings', '', [], 'read policy'))[0]);
    }
    for (const n of ((await d.fw.cfg(IFACE.config, 'getIPSetNames'))[0] as string[]).sort()) {
      ipsets[n] = unwrap((await d.fw.call(await d.fw.mustConfigPath('ipset', n), IFACE.configIpset, 'getSettings', '', [], 'read ipset'))[0]);
    }
  } else {
    for (const n of ((await d.fw.rt(IFACE.policy, 'getPolicies'))[0] as string[]).sort()) {
      policies[n] = unwrap((await d.fw.rt(IFACE.policy, 'getPolicySettings', 's', [n]))[0]);
    }
    for (const n of ((await d.fw.rt(IFACE.ipset, 'getIPSets'))[0] as string[]).sort()) {
      ipsets[n] = unwrap((await d.fw.rt(IFACE.ipset, 'getIPSetSettings', 's', [n]))[0]);
    }
  }
  const direct = permanent
    ? unwrap((await d.fw.cfg(IFACE.configDirect, 'getSettings'))[0])
    : {
        chains: unwrap((await d.fw.rt(IFACE.direct, 'getAllChains'))[0]),
        rules: unwrap((await d.fw.rt(IFACE.direct, 'getAllRules'))[0]),
        passthroughs: unwrap((await d.fw.rt(IFACE.direct, 'getAllPassthroughs'))[0]),
      };
  return {
    default_zone: (await d.fw.rt(IFACE.main, 'getDefaultZone'))[0],
    log_denied: (await d.fw.rt(IFACE.main, 'getLogDenied'))[0],
    panic: permanent ? false : (await d.fw.rt(IFACE.main, 'queryPanicMode'))[0],
    zones,
    policies,
    ipsets,
    direct,
  };
}

export function globalActions(d: Deps): AnyAction[] {
  const simple = (name: string, description: string, member: string, what: string) =>
    defineAction({
      name,
      description,
      params: writeParams({}, { confirm: false }),
      access: 'write',
      handler: (p) =>
        write(
          d,
          {
            what,
            scopes: [],
            check: async () => true,
            apply: async () => {
              // Reloads rebuild every rule set and can take long on large configurations.
              await d.fw.rt(IFACE.main, member, '', [], what, 55_000);
              d.fw.forgetPaths();
            },
          },
          p,
        ),
    });
  const panic = (want: boolean) =>
    defineAction({
      name: want ? 'panic_on' : 'panic_off',
      description: want ? 'Enable panic mode (drop all incoming and outgoing packets)' : 'Disable panic mode',
      params: writeParams({}),
      access: want ? 'dangerous' : 'write',
      handler: (p) =>
        write(
          d,
          {
            what: `${want ? 'enable' : 'disable'} panic mode`,
            scopes: [{ kind: 'panic' }],
            check: async () => (await d.fw.rt(IFACE.main, 'queryPanicMode'))[0] !== want,
            apply: () => applyIdem(() => d.fw.rt(IFACE.main, want ? 'enablePanicMode' : 'disablePanicMode')),
          },
          p,
        ),
    });
  return [
    defineAction({
      name: 'get_status',
      description: 'Get firewalld running status',
      params: Params({}),
      access: 'read',
      handler: async () => {
        const owner = await d.fw.refreshOwner();
        if (!owner) return { running: false, state: 'NOT_RUNNING', bus_connected: d.fw.bus.connected };
        const state = await d.fw.property(FW_PATH, IFACE.main, 'state').catch(() => 'UNKNOWN');
        const version = await d.fw.property(FW_PATH, IFACE.main, 'version').catch(() => null);
        return { running: true, state, version, bus_connected: true, signals_seen: d.fw.signalStats().total };
      },
    }),
    defineAction({
      name: 'get_version',
      description: 'Get firewalld version',
      params: Params({}),
      access: 'read',
      handler: async () => ({
        version: await d.fw.property(FW_PATH, IFACE.main, 'version'),
        interface_version: await d.fw.property(FW_PATH, IFACE.main, 'interface_version'),
      }),
    }),
    simple('reload', 'Reload firewalld configuration', 'reload', 'reload firewalld'),
    simple('complete_reload', 'Complete reload - recreates all zones, interfaces, and rules', 'completeReload', 'completely reload firewalld'),
    simple('runtime_to_permanent', 'Save runtime configuration to permanent', 'runtimeToPermanent', 'save runtime configuration to permanent'),
    defineAction({
      name: 'check_config',
      description: 'Check firewalld configuration for errors',
      params: Params({}),
      access: 'read',
      handler: async () => {
        try {
          await d.fw.rt(IFACE.main, 'checkPermanentConfig', '', [], 'check permanent configuration');
          return { valid: true };
        } catch (e) {
          if (e instanceof TuxsecError && e.code === ErrorCodes.firewalldNotRunning) throw e;
          return { valid: false, error: e instanceof Error ? e.message : String(e) };
        }
      },
    }),
    defineAction({
      name: 'query_panic',
      description: 'Check if panic mode is enabled',
      params: Params({}),
      access: 'read',
      handler: async () => ({ enabled: (await d.fw.rt(IFACE.main, 'queryPanicMode'))[0] === true }),
    }),
    panic(true),
    panic(false),
    defineAction({
      name: 'get_log_denied',
      description: 'Get log denied packets setting',
      params: Params({}),
      access: 'read',
      handler: async () => ({ value: (await d.fw.rt(IFACE.main, 'getLogDenied'))[0] }),
    }),
    defineAction({
      name: 'set_log_denied',
      description: 'Set log denied packets (all, unicast, broadcast, multicast, off)',
      params: writeParams({ value: P.logDenied() }),
      access: 'write',
      handler: (p) =>
        write(
          d,
          {
            what: `set log denied to "${p.value}"`,
            scopes: [{ kind: 'log_denied' }],
            check: async () => (await d.fw.rt(IFACE.main, 'getLogDenied'))[0] !== p.value,
            apply: () => applyIdem(() => d.fw.rt(IFACE.main, 'setLogDenied', 's', [p.value], `set log denied to "${p.value}"`)),
          },
          p,
        ),
    }),
    defineAction({
      name: 'get_state_hash',
      description: 'SHA-256 of the whole firewall state (runtime by default): a changed hash means the firewall changed (drift)',
      params: Params({ permanent: P.permanent(), include_state: Type.Optional(Type.Boolean({ description: 'also return the state that was hashed' })) }),
      access: 'read',
      handler: async (p) => {
        const state = await readState(d, p.permanent);
        const hash = createHash('sha256').update(canonical(state)).digest('hex');
        const sig = d.fw.signalStats();
        return {
          hash,
          permanent: p.permanent === true,
          computed_at: new Date().toISOString(),
          signals_total: sig.total,
          last_signal_at: sig.lastAt,
          ...(p.include_state ? { state } : {}),
        };
      },
    }),
    defineAction({
      name: 'get_signal_stats',
      description: 'firewalld D-Bus signals seen since rootd started (counts by signal and the most recent ones)',
      params: Params({}),
      access: 'read',
      handler: () => ({ ...d.fw.signalStats(), config_path: FW_CONFIG_PATH }),
    }),
    defineAction({
      name: 'get_pending_changes',
      description: 'Changes awaiting confirmation and the history of confirmations and rollbacks',
      params: Params({}),
      access: 'read',
      handler: () => d.guard.status(),
    }),
    defineAction({
      name: 'confirm',
      description: 'Confirm a change made with confirm_timeout so it is kept',
      params: Params({ change_id: P.changeId() }),
      access: 'write',
      handler: (p) => d.guard.confirm(p.change_id),
    }),
    defineAction({
      name: 'rollback',
      description: 'Roll back a change made with confirm_timeout now',
      params: Params({ change_id: P.changeId() }),
      access: 'write',
      handler: (p) => d.guard.rollback(p.change_id, 'rolled back on request'),
    }),
  ];
}
