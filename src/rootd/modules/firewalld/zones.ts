/**
 * Zones: listing, settings as objects, default zone, creation, interfaces, sources,
 * masquerade and ICMP blocks.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Type } from '@sinclair/typebox';
import { CONFIG, IFACE } from './dbus.ts';
import { EL, applyIdem, createDelete, reader, where, write, writeParams, zonePair, type Deps } from './common.ts';
import type { Scope } from './change-guard.ts';
import { ZONE, info, listNames, readSettings } from './objects.ts';
import { R } from './signature.ts';
import { strs } from './info.ts';
import { P, checkSource } from './validate.ts';

/** A zone's settings as the module returns them. */
export interface ZoneInfo {
  name: string;
  permanent: boolean;
  short: string;
  description: string;
  target: string;
  services: string[];
  ports: Array<{ port: string; protocol: string }>;
  protocols: string[];
  source_ports: Array<{ port: string; protocol: string }>;
  icmp_blocks: string[];
  icmp_block_inversion: boolean;
  masquerade: boolean;
  forward: boolean;
  forward_ports: Array<{ port: string; protocol: string; to_port: string; to_addr: string }>;
  interfaces: string[];
  sources: string[];
  rich_rules: string[];
}

export async function readZone(d: Deps, zone: string, permanent?: boolean): Promise<ZoneInfo> {
  const raw = await readSettings(d.fw, ZONE, zone, permanent, permanent ? `read permanent zone "${zone}"` : `read zone "${zone}"`);
  // info() builds exactly the fields of ZONE_INFO, which ZoneInfo lists.
  return info(ZONE, zone, permanent === true, raw) as unknown as ZoneInfo;
}

export function listZones(d: Deps, permanent?: boolean): Promise<string[]> {
  return listNames(d.fw, ZONE, permanent);
}

/** The zone an interface or source is bound to, or null. */
async function zoneOf(d: Deps, kind: 'interface' | 'source', value: string, permanent?: boolean): Promise<string | null> {
  const member = kind === 'interface' ? 'getZoneOfInterface' : 'getZoneOfSource';
  const on = permanent ? CONFIG : { iface: IFACE.zone };
  const z = await d.fw.get({ ...on, member, signature: 's', body: [value], what: `find zone of ${kind} "${value}"` }, R.string);
  return z !== '' ? z : null;
}

/** firewalld's `getActiveZones`: zone -> {interfaces, sources}. */
const ACTIVE_ZONES = Type.Record(Type.String(), Type.Record(Type.String(), Type.Array(Type.String())));

export function defaultZone(d: Deps): Promise<string> {
  return d.fw.get({ iface: IFACE.main, member: 'getDefaultZone' }, R.string);
}

/** Moves an interface or source to `zone`, from whatever zone holds it. */
function changeBinding(
  d: Deps,
  kind: 'interface' | 'source',
  p: { zone: string; value: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number },
) {
  const find = (dd: Deps, value: string, permanent?: boolean) => zoneOf(dd, kind, value, permanent);
  const el = kind === 'interface' ? EL.iface : EL.source;
  return (async () => {
    const from = await find(d, p.value, p.permanent);
    const scopes: Scope[] = [{ kind: 'zone', name: p.zone }];
    if (from && from !== p.zone) scopes.push({ kind: 'zone', name: from });
    return write(
      d,
      {
        what: `change zone of ${kind} "${p.value}" to "${p.zone}" (${where(p.permanent)})`,
        scopes,
        check: async () => (await find(d, p.value, p.permanent)) !== p.zone,
        apply: async () => {
          if (!p.permanent) {
            const member = kind === 'interface' ? 'changeZoneOfInterface' : 'changeZoneOfSource';
            return applyIdem(() => d.fw.call({ iface: IFACE.zone, member, signature: 'ss', body: [p.zone, p.value], what: `change zone of ${kind} "${p.value}" to "${p.zone}"` }));
          }
          const cur = await find(d, p.value, true);
          if (cur === p.zone) return false;
          const target = await d.fw.mustConfigPath('zone', p.zone);
          if (cur) {
            const old = await d.fw.mustConfigPath('zone', cur);
            await d.fw.call({ path: old, iface: IFACE.configZone, member: `remove${el.stem}`, signature: 's', body: [p.value], what: `remove ${kind} "${p.value}" from permanent zone "${cur}"` });
          }
          await d.fw.call({ path: target, iface: IFACE.configZone, member: `add${el.stem}`, signature: 's', body: [p.value], what: `add ${kind} "${p.value}" to permanent zone "${p.zone}"` });
          return true;
        },
      },
      p,
    );
  })();
}

export function zoneActions(d: Deps): AnyAction[] {
  const zp = { zone: P.zone() };
  const src = (p: { source: string }) => {
    checkSource('source', p.source);
    return [p.source];
  };
  return [
    reader('list_zones', 'List all zones', { permanent: P.permanent() }, async (p) => ({ zones: await listZones(d, p.permanent) })),
    reader('get_zone', 'Get zone configuration', { ...zp, permanent: P.permanent() }, (p) => readZone(d, p.zone, p.permanent)),
    reader('get_default_zone', 'Get default zone', {}, async () => ({ zone: await defaultZone(d) })),
    defineAction({
      name: 'set_default_zone',
      description: 'Set default zone',
      params: writeParams(zp),
      access: 'write',
      handler: (p) =>
        write(
          d,
          {
            what: `set default zone to "${p.zone}"`,
            scopes: [{ kind: 'default_zone' }],
            check: async () => (await defaultZone(d)) !== p.zone,
            apply: () => applyIdem(() => d.fw.call({ iface: IFACE.main, member: 'setDefaultZone', signature: 's', body: [p.zone], what: `set default zone to "${p.zone}"` })),
          },
          p,
        ),
    }),
    reader('get_active_zones', 'Get all active zones with their interfaces and sources', {}, async () => {
      const active = await d.fw.get({ iface: IFACE.zone, member: 'getActiveZones' }, ACTIVE_ZONES);
      const out: Record<string, { interfaces: string[]; sources: string[] }> = {};
      for (const [z, v] of Object.entries(active)) out[z] = { interfaces: strs(v.interfaces), sources: strs(v.sources) };
      return { zones: out };
    }),
    ...createDelete(d, ZONE, {
      create: ['new_zone', 'Create a new zone (in the permanent configuration: firewalld creates zones only there; reload to use it at runtime)', zp],
      delete: ['delete_zone', 'Delete a zone (from the permanent configuration)', zp],
      permanent: true,
    }),
    reader('get_zone_of_interface', 'Get the zone an interface belongs to', { interface: P.iface(), permanent: P.permanent() }, async (p) => ({
      interface: p.interface,
      zone: await zoneOf(d, 'interface', p.interface, p.permanent),
    })),
    reader('get_zone_of_source', 'Get the zone a source belongs to', { source: P.source(), permanent: P.permanent() }, async (p) => {
      checkSource('source', p.source);
      return { source: p.source, zone: await zoneOf(d, 'source', p.source, p.permanent) };
    }),
    ...zonePair(d, EL.iface, { add: ['add_interface', 'Add interface to zone'], remove: ['remove_interface', 'Remove interface from zone'] }, { interface: P.iface() }, (p) => [p.interface]),
    defineAction({
      name: 'change_interface',
      description: 'Change interface to different zone',
      params: writeParams({ ...zp, interface: P.iface() }, { permanent: true }),
      access: 'write',
      handler: (p) => changeBinding(d, 'interface', { ...p, value: p.interface }),
    }),
    reader('list_interfaces', 'List interfaces in a zone', { ...zp, permanent: P.permanent() }, async (p) => ({ zone: p.zone, interfaces: (await readZone(d, p.zone, p.permanent)).interfaces })),
    ...zonePair(d, EL.source, { add: ['add_source', 'Add source to zone'], remove: ['remove_source', 'Remove source from zone'] }, { source: P.source() }, src),
    defineAction({
      name: 'change_source',
      description: 'Change source to different zone',
      params: writeParams({ ...zp, source: P.source() }, { permanent: true }),
      access: 'write',
      handler: (p) => changeBinding(d, 'source', { ...p, value: src(p)[0]! }),
    }),
    reader('list_sources', 'List sources in a zone', { ...zp, permanent: P.permanent() }, async (p) => ({ zone: p.zone, sources: (await readZone(d, p.zone, p.permanent)).sources })),
    ...zonePair(d, EL.source, { add: ['zone_add_source_ipset', 'Add IPSet as source to zone'], remove: ['zone_remove_source_ipset', 'Remove IPSet source from zone'] }, { ipset: P.ipset() }, (p) => [
      `ipset:${p.ipset}`,
    ]),
    ...zonePair(d, EL.masquerade, { add: ['add_masquerade', 'Enable masquerading for zone'], remove: ['remove_masquerade', 'Disable masquerading for zone'] }, {}, () => []),
    ...zonePair(d, EL.icmpBlock, { add: ['add_icmp_block', 'Add ICMP block to zone'], remove: ['remove_icmp_block', 'Remove ICMP block from zone'] }, { icmp_type: P.icmpType() }, (p) => [p.icmp_type]),
    ...zonePair(
      d,
      EL.icmpInversion,
      { add: ['add_icmp_block_inversion', 'Enable ICMP block inversion for zone'], remove: ['remove_icmp_block_inversion', 'Disable ICMP block inversion for zone'] },
      {},
      () => [],
    ),
  ];
}
