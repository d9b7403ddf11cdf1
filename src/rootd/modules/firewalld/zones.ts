/**
 * Zones: listing, settings as objects, default zone, creation, interfaces, sources,
 * masquerade and ICMP blocks.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE, unwrap } from './dbus.ts';
import { EL, applyIdem, createPermanent, deletePermanent, forwardPorts, portProtos, strs, toggleZoneElement, where, write, writeParams, type Deps } from './common.ts';
import type { Scope } from './safety.ts';
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

/** Normalizes firewalld's a{sv} zone settings (which omit empty keys) to a full object. */
export function zoneInfo(name: string, permanent: boolean, raw: unknown): ZoneInfo {
  const s = (unwrap(raw) ?? {}) as Record<string, unknown>;
  return {
    name,
    permanent,
    short: String(s.short ?? ''),
    description: String(s.description ?? ''),
    target: String(s.target ?? 'default'),
    services: strs(s.services),
    ports: portProtos(s.ports),
    protocols: strs(s.protocols),
    source_ports: portProtos(s.source_ports),
    icmp_blocks: strs(s.icmp_blocks),
    icmp_block_inversion: s.icmp_block_inversion === true,
    masquerade: s.masquerade === true,
    forward: s.forward === true,
    forward_ports: forwardPorts(s.forward_ports),
    interfaces: strs(s.interfaces),
    sources: strs(s.sources),
    rich_rules: strs(s.rules_str ?? s.rich_rules),
  };
}

export async function readZone(d: Deps, zone: string, permanent?: boolean): Promise<ZoneInfo> {
  if (permanent) {
    const path = await d.fw.mustConfigPath('zone', zone);
    const [raw] = await d.fw.call(path, IFACE.configZone, 'getSettings2', '', [], `read permanent zone "${zone}"`);
    return zoneInfo(zone, true, raw);
  }
  const [raw] = await d.fw.rt(IFACE.zone, 'getZoneSettings2', 's', [zone], `read zone "${zone}"`);
  return zoneInfo(zone, false, raw);
}

export async function listZones(d: Deps, permanent?: boolean): Promise<string[]> {
  const [z] = permanent ? await d.fw.cfg(IFACE.config, 'getZoneNames') : await d.fw.rt(IFACE.zone, 'getZones');
  return strs(z);
}

async function zoneOfInterface(d: Deps, iface: string, permanent?: boolean): Promise<string | null> {
  const [z] = permanent
    ? await d.fw.cfg(IFACE.config, 'getZoneOfInterface', 's', [iface], `find zone of interface "${iface}"`)
    : await d.fw.rt(IFACE.zone, 'getZoneOfInterface', 's', [iface], `find zone of interface "${iface}"`);
  return typeof z === 'string' && z !== '' ? z : null;
}

async function zoneOfSource(d: Deps, source: string, permanent?: boolean): Promise<string | null> {
  const [z] = permanent
    ? await d.fw.cfg(IFACE.config, 'getZoneOfSource', 's', [source], `find zone of source "${source}"`)
    : await d.fw.rt(IFACE.zone, 'getZoneOfSource', 's', [source], `find zone of source "${source}"`);
  return typeof z === 'string' && z !== '' ? z : null;
}

/** Moves an interface or source to `zone`, from whatever zone holds it. */
function changeBinding(
  d: Deps,
  kind: 'interface' | 'source',
  p: { zone: string; value: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number },
) {
  const find = kind === 'interface' ? zoneOfInterface : zoneOfSource;
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
            return applyIdem(() => d.fw.rt(IFACE.zone, member, 'ss', [p.zone, p.value], `change zone of ${kind} "${p.value}" to "${p.zone}"`));
          }
          const cur = await find(d, p.value, true);
          if (cur === p.zone) return false;
          const target = await d.fw.mustConfigPath('zone', p.zone);
          if (cur) {
            const old = await d.fw.mustConfigPath('zone', cur);
            await d.fw.call(old, IFACE.configZone, `remove${el.stem}`, 's', [p.value], `remove ${kind} "${p.value}" from permanent zone "${cur}"`);
          }
          await d.fw.call(target, IFACE.configZone, `add${el.stem}`, 's', [p.value], `add ${kind} "${p.value}" to permanent zone "${p.zone}"`);
          return true;
        },
      },
      p,
    );
  })();
}

export function zoneActions(d: Deps): AnyAction[] {
  const zp = { zone: P.zone() };
  return [
    defineAction({
      name: 'list_zones',
      description: 'List all zones',
      params: Params({ permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ zones: await listZones(d, p.permanent) }),
    }),
    defineAction({
      name: 'get_zone',
      description: 'Get zone configuration',
      params: Params({ ...zp, permanent: P.permanent() }),
      access: 'read',
      handler: (p) => readZone(d, p.zone, p.permanent),
    }),
    defineAction({
      name: 'get_default_zone',
      description: 'Get default zone',
      params: Params({}),
      access: 'read',
      handler: async () => ({ zone: String((await d.fw.rt(IFACE.main, 'getDefaultZone'))[0]) }),
    }),
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
            check: async () => (await d.fw.rt(IFACE.main, 'getDefaultZone'))[0] !== p.zone,
            apply: () => applyIdem(() => d.fw.rt(IFACE.main, 'setDefaultZone', 's', [p.zone], `set default zone to "${p.zone}"`)),
          },
          p,
        ),
    }),
    defineAction({
      name: 'get_active_zones',
      description: 'Get all active zones with their interfaces and sources',
      params: Params({}),
      access: 'read',
      handler: async () => {
        const [raw] = await d.fw.rt(IFACE.zone, 'getActiveZones');
        const out: Record<string, { interfaces: string[]; sources: string[] }> = {};
        for (const [z, v] of Object.entries((unwrap(raw) ?? {}) as Record<string, Record<string, unknown>>)) {
          out[z] = { interfaces: strs(v.interfaces), sources: strs(v.sources) };
        }
        return { zones: out };
      },
    }),
    defineAction({
      name: 'new_zone',
      description: 'Create a new zone (in the permanent configuration: firewalld creates zones only there; reload to use it at runtime)',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: async (p) => ({
        ...(await createPermanent(d, p, { kind: 'zone', name: p.zone, method: 'addZone2', signature: 'sa{sv}', args: [p.zone, {}] })),
        permanent: true,
      }),
    }),
    defineAction({
      name: 'delete_zone',
      description: 'Delete a zone (from the permanent configuration)',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: async (p) => ({ ...(await deletePermanent(d, p, { kind: 'zone', name: p.zone, iface: IFACE.configZone })), permanent: true }),
    }),
    defineAction({
      name: 'get_zone_of_interface',
      description: 'Get the zone an interface belongs to',
      params: Params({ interface: P.iface(), permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ interface: p.interface, zone: await zoneOfInterface(d, p.interface, p.permanent) }),
    }),
    defineAction({
      name: 'get_zone_of_source',
      description: 'Get the zone a source belongs to',
      params: Params({ source: P.source(), permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => {
        checkSource('source', p.source);
        return { source: p.source, zone: await zoneOfSource(d, p.source, p.permanent) };
      },
    }),
    defineAction({
      name: 'add_interface',
      description: 'Add interface to zone',
      params: writeParams({ ...zp, interface: P.iface() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.iface, p, [p.interface], true),
    }),
    defineAction({
      name: 'remove_interface',
      description: 'Remove interface from zone',
      params: writeParams({ ...zp, interface: P.iface() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.iface, p, [p.interface], false),
    }),
    defineAction({
      name: 'change_interface',
      description: 'Change interface to different zone',
      params: writeParams({ ...zp, interface: P.iface() }, { permanent: true }),
      access: 'write',
      handler: (p) => changeBinding(d, 'interface', { ...p, value: p.interface }),
    }),
    defineAction({
      name: 'list_interfaces',
      description: 'List interfaces in a zone',
      params: Params({ ...zp, permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ zone: p.zone, interfaces: (await readZone(d, p.zone, p.permanent)).interfaces }),
    }),
    defineAction({
      name: 'add_source',
      description: 'Add source to zone',
      params: writeParams({ ...zp, source: P.source() }, { permanent: true }),
      access: 'write',
      handler: (p) => {
        checkSource('source', p.source);
        return toggleZoneElement(d, EL.source, p, [p.source], true);
      },
    }),
    defineAction({
      name: 'remove_source',
      description: 'Remove source from zone',
      params: writeParams({ ...zp, source: P.source() }, { permanent: true }),
      access: 'write',
      handler: (p) => {
        checkSource('source', p.source);
        return toggleZoneElement(d, EL.source, p, [p.source], false);
      },
    }),
    defineAction({
      name: 'change_source',
      description: 'Change source to different zone',
      params: writeParams({ ...zp, source: P.source() }, { permanent: true }),
      access: 'write',
      handler: (p) => {
        checkSource('source', p.source);
        return changeBinding(d, 'source', { ...p, value: p.source });
      },
    }),
    defineAction({
      name: 'list_sources',
      description: 'List sources in a zone',
      params: Params({ ...zp, permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ zone: p.zone, sources: (await readZone(d, p.zone, p.permanent)).sources }),
    }),
    defineAction({
      name: 'zone_add_source_ipset',
      description: 'Add IPSet as source to zone',
      params: writeParams({ ...zp, ipset: P.ipset() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.source, p, [`ipset:${p.ipset}`], true),
    }),
    defineAction({
      name: 'zone_remove_source_ipset',
      description: 'Remove IPSet source from zone',
      params: writeParams({ ...zp, ipset: P.ipset() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.source, p, [`ipset:${p.ipset}`], false),
    }),
    defineAction({
      name: 'add_masquerade',
      description: 'Enable masquerading for zone',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.masquerade, p, [], true),
    }),
    defineAction({
      name: 'remove_masquerade',
      description: 'Disable masquerading for zone',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.masquerade, p, [], false),
    }),
    defineAction({
      name: 'add_icmp_block',
      description: 'Add ICMP block to zone',
      params: writeParams({ ...zp, icmp_type: P.icmpType() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.icmpBlock, p, [p.icmp_type], true),
    }),
    defineAction({
      name: 'remove_icmp_block',
      description: 'Remove ICMP block from zone',
      params: writeParams({ ...zp, icmp_type: P.icmpType() }, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.icmpBlock, p, [p.icmp_type], false),
    }),
    defineAction({
      name: 'add_icmp_block_inversion',
      description: 'Enable ICMP block inversion for zone',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.icmpInversion, p, [], true),
    }),
    defineAction({
      name: 'remove_icmp_block_inversion',
      description: 'Disable ICMP block inversion for zone',
      params: writeParams(zp, { permanent: true }),
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.icmpInversion, p, [], false),
    }),
  ];
}
