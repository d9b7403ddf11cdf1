/**
 * firewalld's named objects, each described once: where its runtime and permanent settings are
 * read and written, its defaults (firewalld omits empty keys), and the shape of its settings.
 * The info actions, create/delete, the snapshot and rollback and the state hash all read these
 * descriptors instead of naming D-Bus methods themselves.
 */
import type { TSchema } from '@sinclair/typebox';
import { CONFIG, IFACE, type ConfigKind, type FirewalldClient } from './dbus.ts';
import { R, SettingsDict, schemaOf, toVariantDict } from './signature.ts';
import { POLICY_INFO, SERVICE_INFO, ZONE_INFO, type InfoFields } from './info.ts';

/** Turns saved settings into what the setter takes (fills firewalld's omitted keys). */
type Encode = (v: never) => unknown;

export interface ObjectKind {
  kind: ConfigKind;
  /** Interface of a permanent object (`remove`, `getSettings`, `update`...). */
  configIface: string;
  /** Names: runtime method and its interface, and the config-root method. */
  names: { iface: string; runtime: string; permanent: string };
  /** Settings of one object: runtime method (name as argument) and permanent method (on its path). */
  settings: { iface: string; runtime: string; permanent: string; shape: TSchema };
  /** Writable permanent objects: how to replace their settings and to recreate one. */
  permanent?: { update: string; add: string; signature: string; encode?: Encode };
  /** The runtime state a rollback puts back, when the kind has one. */
  runtime?: { get: string; set: string; shape: TSchema; signature: string; encode?: Encode };
  /** The info actions' view of the settings, key by key in this order. */
  info?: InfoFields;
}

/** Fills absent keys with defaults (firewalld omits empty ones) and drops unknown ones. */
export function complete(settings: Record<string, unknown>, defaults: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(defaults)) out[k] = settings[k] ?? d;
  return out;
}

/** Settings keys (with their empty values) shared by zones and policies. */
const RULE_LISTS = { services: [], ports: [], icmp_blocks: [], forward_ports: [], protocols: [], source_ports: [] };
const DESCRIBED = { version: '', short: '', description: '' };

/** A zone's permanent settings with firewalld's defaults. */
export const ZONE_DEFAULTS: Record<string, unknown> = {
  ...DESCRIBED,
  target: 'default',
  ...RULE_LISTS,
  masquerade: false,
  interfaces: [],
  sources: [],
  rules_str: [],
  icmp_block_inversion: false,
  forward: false,
};
/** What a rollback sets on a runtime zone. */
const ZONE_RUNTIME: Record<string, unknown> = {
  ...RULE_LISTS,
  interfaces: [],
  sources: [],
  rules_str: [],
  masquerade: false,
  icmp_block_inversion: false,
  forward: false,
};
/** A policy's permanent settings with firewalld's defaults. */
export const POLICY_DEFAULTS: Record<string, unknown> = {
  ...DESCRIBED,
  target: 'CONTINUE',
  ...RULE_LISTS,
  masquerade: false,
  rich_rules: [],
  priority: -1,
  ingress_zones: [],
  egress_zones: [],
};
/** What a rollback sets on a runtime policy. */
const POLICY_RUNTIME: Record<string, unknown> = { ...RULE_LISTS, rich_rules: [], ingress_zones: [], egress_zones: [], masquerade: false };
/** A service definition with firewalld's defaults. */
export const SERVICE_DEFAULTS: Record<string, unknown> = {
  ...DESCRIBED,
  ports: [],
  modules: [],
  destination: {},
  protocols: [],
  source_ports: [],
  includes: [],
  helpers: [],
};

const dict = (defaults: Record<string, unknown>): Encode => (v: Record<string, unknown>) => toVariantDict(complete(v, defaults));

export const ZONE: ObjectKind = {
  kind: 'zone',
  configIface: IFACE.configZone,
  names: { iface: IFACE.zone, runtime: 'getZones', permanent: 'getZoneNames' },
  settings: { iface: IFACE.zone, runtime: 'getZoneSettings2', permanent: 'getSettings2', shape: SettingsDict },
  permanent: { update: 'update2', add: 'addZone2', signature: 'a{sv}', encode: dict(ZONE_DEFAULTS) },
  runtime: { get: 'getZoneSettings2', set: 'setZoneSettings2', shape: SettingsDict, signature: 'a{sv}', encode: dict(ZONE_RUNTIME) },
  info: ZONE_INFO,
};

export const POLICY: ObjectKind = {
  kind: 'policy',
  configIface: IFACE.configPolicy,
  names: { iface: IFACE.policy, runtime: 'getPolicies', permanent: 'getPolicyNames' },
  settings: { iface: IFACE.policy, runtime: 'getPolicySettings', permanent: 'getSettings', shape: SettingsDict },
  permanent: { update: 'update', add: 'addPolicy', signature: 'a{sv}', encode: dict(POLICY_DEFAULTS) },
  runtime: { get: 'getPolicySettings', set: 'setPolicySettings', shape: SettingsDict, signature: 'a{sv}', encode: dict(POLICY_RUNTIME) },
  info: POLICY_INFO,
};

export const SERVICE: ObjectKind = {
  kind: 'service',
  configIface: IFACE.configService,
  names: { iface: IFACE.main, runtime: 'listServices', permanent: 'getServiceNames' },
  settings: { iface: IFACE.main, runtime: 'getServiceSettings2', permanent: 'getSettings2', shape: SettingsDict },
  permanent: { update: 'update2', add: 'addService2', signature: 'a{sv}', encode: dict(SERVICE_DEFAULTS) },
  info: SERVICE_INFO,
};

export const IPSET: ObjectKind = {
  kind: 'ipset',
  configIface: IFACE.configIpset,
  names: { iface: IFACE.ipset, runtime: 'getIPSets', permanent: 'getIPSetNames' },
  settings: { iface: IFACE.ipset, runtime: 'getIPSetSettings', permanent: 'getSettings', shape: R.ipset },
  permanent: { update: 'update', add: 'addIPSet', signature: '(ssssa{ss}as)' },
  runtime: { get: 'getEntries', set: 'setEntries', shape: schemaOf('as'), signature: 'as' },
};

export const HELPER: Pick<ObjectKind, 'kind' | 'names'> = { kind: 'helper', names: { iface: IFACE.main, runtime: 'getHelpers', permanent: 'getHelperNames' } };
export const ICMPTYPE: Pick<ObjectKind, 'kind' | 'names'> = { kind: 'icmptype', names: { iface: IFACE.main, runtime: 'listIcmpTypes', permanent: 'getIcmpTypeNames' } };

/** The kinds a write can snapshot and roll back. */
export const OBJECTS = { zone: ZONE, policy: POLICY, service: SERVICE, ipset: IPSET } as const;
export type ObjectName = keyof typeof OBJECTS;

/** Names of the objects of a kind, runtime or permanent. */
export function listNames(fw: FirewalldClient, o: Pick<ObjectKind, 'kind' | 'names'>, permanent?: boolean): Promise<string[]> {
  return permanent ? fw.get({ ...CONFIG, member: o.names.permanent }, R.strings) : fw.get({ iface: o.names.iface, member: o.names.runtime }, R.strings);
}

/**
 * The settings of one object as firewalld sends them (checked against the kind's shape).
 * Permanent: not-found when the object does not exist.
 */
export async function readSettings(fw: FirewalldClient, o: ObjectKind, name: string, permanent?: boolean, what = `read ${o.kind} "${name}"`): Promise<unknown> {
  const s = o.settings;
  if (permanent) return fw.get({ path: await fw.mustConfigPath(o.kind, name), iface: o.configIface, member: s.permanent, what }, s.shape);
  return fw.get({ iface: s.iface, member: s.runtime, signature: 's', body: [name], what }, s.shape);
}

/** The info actions' view of an object's settings (`{name, permanent, ...}`). */
export function info(o: ObjectKind, name: string, permanent: boolean, raw: unknown): Record<string, unknown> {
  const s = (raw ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { name, permanent };
  for (const [k, f] of Object.entries(o.info ?? {})) out[k] = f(s);
  return out;
}

/** Removes a permanent object by its path. */
export async function removePermanent(fw: FirewalldClient, o: ObjectKind, path: string, what: string): Promise<void> {
  await fw.call({ path, iface: o.configIface, member: 'remove', what });
  fw.forgetPaths();
}
