/**
 * apply_zone_settings: a whole desired state of several zones (services, ports, rich rules) made
 * present in one call, additively: what is there already stays, nothing is removed. One write
 * through the change guard with every zone as a scope, so dry_run reports each item, one
 * confirm_timeout gives one change id and one rollback for all of it, and a failure half-way
 * puts every zone back as it was (the guard's `atomic`).
 */
import { ZONE_SETTINGS_LIMITS, ZonesSettings, itemCount, type ZoneSettings } from '../../../protocol/firewall-template.ts';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import type { Scope } from './change-guard.ts';
import { EL, applyIdem, where, write, writeParams, zoneElement, type Deps, type ElementKind } from './common.ts';
import { SERVICE, ZONE, listNames } from './objects.ts';
import { readZone, type ZoneInfo } from './zones.ts';
import { checkPort, checkRichRule, invalid } from './validate.ts';

type Kind = 'service' | 'port' | 'rich_rule';

/** One element of the template, checked, and what became of it. */
export interface ZoneItem {
  zone: string;
  kind: Kind;
  value: string;
  /** Would change (dry_run) or changed. */
  changed: boolean;
}

const ELEMENT: Record<Kind, ElementKind> = { service: EL.service, port: EL.port, rich_rule: EL.richRule };

/** The items of `zones`, each value checked as the single-item actions check it; throws invalid-params. */
function itemsOf(zones: Record<string, ZoneSettings>): Array<{ zone: string; kind: Kind; value: string; args: string[] }> {
  const out: Array<{ zone: string; kind: Kind; value: string; args: string[] }> = [];
  for (const [zone, s] of Object.entries(zones)) {
    for (const v of s.services ?? []) out.push({ zone, kind: 'service', value: v, args: [v] });
    for (const v of s.ports ?? []) {
      const p = checkPort(`zones.${zone}.ports`, v);
      out.push({ zone, kind: 'port', value: v, args: [p.port, p.protocol] });
    }
    for (const v of s.rich_rules ?? []) {
      const r = checkRichRule(`zones.${zone}.rich_rules`, v);
      out.push({ zone, kind: 'rich_rule', value: r, args: [r] });
    }
  }
  if (itemCount(zones) > ZONE_SETTINGS_LIMITS.items) invalid('zones', `${out.length} items`, `at most ${ZONE_SETTINGS_LIMITS.items} services, ports and rich rules in all`);
  return out;
}

function describe(zones: Record<string, ZoneSettings>, permanent: boolean | undefined, n: number): string {
  const names = Object.keys(zones).map((z) => `"${z}"`).join(', ');
  return `apply zone settings to zone${Object.keys(zones).length === 1 ? '' : 's'} ${names} (${where(permanent)}): ${n} item${n === 1 ? '' : 's'}`;
}

export function zoneSettingsActions(d: Deps): AnyAction[] {
  return [
    defineAction({
      name: 'apply_zone_settings',
      description:
        'Make services, ports and rich rules present in several zones at once (a template), additively; dry_run reports each item, confirm_timeout rolls all of it back as one change',
      params: writeParams({ zones: ZonesSettings }, { permanent: true }),
      access: 'write',
      handler: async (p) => {
        const zones = p.zones as Record<string, ZoneSettings>;
        const items = itemsOf(zones);
        const pending = new Map<number, boolean>();
        const probes = items.map((it) => zoneElement(d, ELEMENT[it.kind], it.zone, it.args, p.permanent));
        const scopes: Scope[] = Object.keys(zones).map((name) => ({ kind: 'zone', name }));
        const res = await write(
          d,
          {
            what: describe(zones, p.permanent, items.length),
            scopes,
            atomic: true,
            check: async () => {
              // Unknown zones and services are refused before anything changes, naming them.
              const [known, services] = await Promise.all([listNames(d.fw, ZONE, p.permanent), listNames(d.fw, SERVICE, p.permanent)]);
              for (const z of Object.keys(zones)) if (!known.includes(z)) invalid('zones', z, `no such zone (${where(p.permanent)})`);
              for (const it of items) if (it.kind === 'service' && !services.includes(it.value)) invalid(`zones.${it.zone}.services`, it.value, `unknown service (${where(p.permanent)})`);
              // One read per zone for services and ports (as firewalld's own queries compare them); rich
              // rules are asked one by one, since firewalld normalizes their text.
              const held = new Map<string, ZoneInfo>();
              for (const z of Object.keys(zones)) held.set(z, await readZone(d, z, p.permanent));
              for (let i = 0; i < items.length; i++) {
                const it = items[i]!;
                const z = held.get(it.zone)!;
                const present =
                  it.kind === 'service' ? z.services.includes(it.value) : it.kind === 'port' ? z.ports.some((x) => x.port === it.args[0] && x.protocol === it.args[1]) : await probes[i]!.query();
                pending.set(i, !present);
              }
              return [...pending.values()].some(Boolean);
            },
            apply: async () => {
              let any = false;
              for (let i = 0; i < items.length; i++) {
                if (!pending.get(i)) continue;
                const done = await applyIdem(probes[i]!.add);
                pending.set(i, done);
                any ||= done;
              }
              return any;
            },
          },
          p,
        );
        const out: ZoneItem[] = items.map((it, i) => ({ zone: it.zone, kind: it.kind, value: it.value, changed: pending.get(i) === true && (res.dry_run === true || res.changed) }));
        return { ...res, permanent: p.permanent === true, items: out };
      },
    }),
  ];
}

