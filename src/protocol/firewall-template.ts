/**
 * A firewall template's desired state of zones, once for both ends: tuxsec-server checks the
 * templates operators store with it, and rootd's firewalld `apply_zone_settings` takes it as its
 * `zones` parameter. The name patterns are the firewalld module's own (validate.ts uses them).
 */
import { Type, type Static } from '@sinclair/typebox';

/** Zone names: letters, digits, "_" and "-", at most 17 characters (firewalld's limit). */
export const ZONE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,16}$';
export const SERVICE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$';
export const PORT_PATTERN = '^[0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp|sctp|dccp)$';
/** A rich rule: no control characters; its words are checked again before firewalld sees it. */
export const RICH_RULE_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,2048}$';

/** Most zones, and items in all, one template may name: one rootd request must stay well under its timeout. */
export const ZONE_SETTINGS_LIMITS = { zones: 32, perList: 128, richRulesPerZone: 64, items: 512 };

/** What a template says of one zone: each made present, nothing removed. */
export const ZoneSettings = Type.Object(
  {
    services: Type.Optional(
      Type.Array(Type.String({ pattern: SERVICE_PATTERN, maxLength: 64 }), { maxItems: ZONE_SETTINGS_LIMITS.perList, uniqueItems: true, description: 'services to enable, e.g. "https"' }),
    ),
    ports: Type.Optional(
      Type.Array(Type.String({ pattern: PORT_PATTERN, maxLength: 17 }), { maxItems: ZONE_SETTINGS_LIMITS.perList, uniqueItems: true, description: 'ports to open, e.g. "8443/tcp"' }),
    ),
    rich_rules: Type.Optional(
      Type.Array(Type.String({ pattern: RICH_RULE_PATTERN, maxLength: 2048 }), { maxItems: ZONE_SETTINGS_LIMITS.richRulesPerZone, uniqueItems: true, description: 'rich rules to add' }),
    ),
  },
  { additionalProperties: false },
);
export type ZoneSettings = Static<typeof ZoneSettings>;

/** Zone name -> its settings. */
export const ZonesSettings = Type.Record(Type.String({ pattern: ZONE_PATTERN }), ZoneSettings, {
  minProperties: 1,
  maxProperties: ZONE_SETTINGS_LIMITS.zones,
  additionalProperties: false,
  description: `zone name -> {services, ports, rich_rules}: each made present (nothing is removed); at most ${ZONE_SETTINGS_LIMITS.zones} zones and ${ZONE_SETTINGS_LIMITS.items} items`,
});
export type ZonesSettings = Static<typeof ZonesSettings>;

/** How many services, ports and rich rules `zones` names in all (the limit `items` is on this). */
export function itemCount(zones: ZonesSettings): number {
  let n = 0;
  for (const s of Object.values(zones)) n += (s.services?.length ?? 0) + (s.ports?.length ?? 0) + (s.rich_rules?.length ?? 0);
  return n;
}
