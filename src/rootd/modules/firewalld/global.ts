/**
 * Daemon-wide actions: status, version, reloads, panic mode, log-denied, drift detection
 * (state hash and recorded signals) and confirmation of pending changes.
 */
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { FW_CONFIG_PATH, FW_PATH, IFACE } from './dbus.ts';
import { applyIdem, reader, write, writeParams, type Deps } from './common.ts';
import { defaultZone, listZones, readZone } from './zones.ts';
import { IPSET, POLICY, listNames, readSettings, type ObjectKind } from './objects.ts';
import { R } from './signature.ts';
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

/** The settings of every object of a kind, by name (sorted). */
async function allSettings(d: Deps, o: ObjectKind, permanent?: boolean): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const n of (await listNames(d.fw, o, permanent)).sort()) out[n] = await readSettings(d.fw, o, n, permanent);
  return out;
}

/** The direct configuration: one settings tuple when permanent, chains, rules and passthroughs at runtime. */
async function directState(d: Deps, permanent?: boolean): Promise<unknown> {
  if (permanent) return d.fw.get({ path: FW_CONFIG_PATH, iface: IFACE.configDirect, member: 'getSettings' }, R.any);
  const all = (member: string) => d.fw.get({ iface: IFACE.direct, member }, R.any);
  return { chains: await all('getAllChains'), rules: await all('getAllRules'), passthroughs: await all('getAllPassthroughs') };
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
  const policies = await allSettings(d, POLICY, permanent);
  const ipsets = await allSettings(d, IPSET, permanent);
  const direct = await directState(d, permanent);
  return {
    default_zone: await defaultZone(d),
    log_denied: await logDenied(d),
    panic: permanent ? false : await panicMode(d),
    zones,
    policies,
    ipsets,
    direct,
  };
}

const logDenied = (d: Deps) => d.fw.get({ iface: IFACE.main, member: 'getLogDenied' }, R.string);
const panicMode = (d: Deps) => d.fw.get({ iface: IFACE.main, member: 'queryPanicMode' }, R.bool);

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
              await d.fw.call({ iface: IFACE.main, member, what, timeoutMs: 55_000 });
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
            check: async () => (await panicMode(d)) !== want,
            apply: () => applyIdem(() => d.fw.call({ iface: IFACE.main, member: want ? 'enablePanicMode' : 'disablePanicMode' })),
          },
          p,
        ),
    });
  return [
    reader('get_status', 'Get firewalld running status', {}, async () => {
      const owner = await d.fw.refreshOwner();
      if (!owner) return { running: false, state: 'NOT_RUNNING', bus_connected: d.fw.bus.connected };
      const state = await d.fw.property(FW_PATH, IFACE.main, 'state').catch(() => 'UNKNOWN');
      const version = await d.fw.property(FW_PATH, IFACE.main, 'version').catch(() => null);
      return { running: true, state, version, bus_connected: true, signals_seen: d.fw.signalStats().total };
    }),
    reader('get_version', 'Get firewalld version', {}, async () => ({
      version: await d.fw.property(FW_PATH, IFACE.main, 'version'),
      interface_version: await d.fw.property(FW_PATH, IFACE.main, 'interface_version'),
    })),
    simple('reload', 'Reload firewalld configuration', 'reload', 'reload firewalld'),
    simple('complete_reload', 'Complete reload - recreates all zones, interfaces, and rules', 'completeReload', 'completely reload firewalld'),
    simple('runtime_to_permanent', 'Save runtime configuration to permanent', 'runtimeToPermanent', 'save runtime configuration to permanent'),
    reader('check_config', 'Check firewalld configuration for errors', {}, async () => {
      try {
        await d.fw.call({ iface: IFACE.main, member: 'checkPermanentConfig', what: 'check permanent configuration' });
        return { valid: true };
      } catch (e) {
        if (e instanceof TuxsecError && e.code === ErrorCodes.firewalldNotRunning) throw e;
        return { valid: false, error: e instanceof Error ? e.message : String(e) };
      }
    }),
    reader('query_panic', 'Check if panic mode is enabled', {}, async () => ({ enabled: await panicMode(d) })),
    panic(true),
    panic(false),
    reader('get_log_denied', 'Get log denied packets setting', {}, async () => ({ value: await logDenied(d) })),
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
            check: async () => (await logDenied(d)) !== p.value,
            apply: () => applyIdem(() => d.fw.call({ iface: IFACE.main, member: 'setLogDenied', signature: 's', body: [p.value], what: `set log denied to "${p.value}"` })),
          },
          p,
        ),
    }),
    reader('get_state_hash', 'SHA-256 of the whole firewall state (runtime by default): a changed hash means the firewall changed (drift)', { permanent: P.permanent(), include_state: Type.Optional(Type.Boolean({ description: 'also return the state that was hashed' })) }, async (p) => {
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
    }),
    reader('get_signal_stats', 'firewalld D-Bus signals seen since rootd started (counts by signal and the most recent ones)', {}, () => ({ ...d.fw.signalStats(), config_path: FW_CONFIG_PATH })),
    reader('get_pending_changes', 'Changes awaiting confirmation and the history of confirmations and rollbacks', {}, () => d.guard.status()),
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
