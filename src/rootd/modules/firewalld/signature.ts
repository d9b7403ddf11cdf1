/**
 * The shapes of firewalld's values, written once as D-Bus signatures and turned into TypeBox
 * schemas: the same schema checks a reply from firewalld and a value read back from the
 * pending-changes file before it is sent to firewalld again.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { compiled } from '../../../protocol/compiled.ts';
import dbus from 'dbus-next';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';

const { Variant } = dbus;

/** The signature of each settings key firewalld accepts in a{sv} dicts. */
export const SETTING_SIGNATURES: Record<string, string> = {
  version: 's',
  short: 's',
  description: 's',
  target: 's',
  services: 'as',
  ports: 'a(ss)',
  icmp_blocks: 'as',
  masquerade: 'b',
  forward_ports: 'a(ssss)',
  interfaces: 'as',
  sources: 'as',
  rules_str: 'as',
  rich_rules: 'as',
  protocols: 'as',
  source_ports: 'a(ss)',
  icmp_block_inversion: 'b',
  forward: 'b',
  ingress_priority: 'i',
  egress_priority: 'i',
  priority: 'i',
  ingress_zones: 'as',
  egress_zones: 'as',
  modules: 'as',
  destination: 'a{ss}',
  includes: 'as',
  helpers: 'as',
};

/** Splits a run of complete types (`ssas` -> `s`, `s`, `as`). */
function splitTypes(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < sig.length) {
    let j = i;
    while (sig[j] === 'a') j++;
    const open = sig[j];
    if (open === '(' || open === '{') {
      const close = open === '(' ? ')' : '}';
      let depth = 0;
      do {
        if (sig[j] === open) depth++;
        else if (sig[j] === close) depth--;
        j++;
      } while (depth > 0 && j < sig.length);
    } else {
      j++;
    }
    out.push(sig.slice(i, j));
    i = j;
  }
  return out;
}

/**
 * The schema of one complete D-Bus type, as the value looks after {@link unwrap}. A variant
 * (`v`) and the values of an `a{sv}` accept anything: their own type travels with them.
 */
export function schemaOf(sig: string): TSchema {
  if (sig === 'a{sv}') return Type.Record(Type.String(), Type.Unknown());
  if (sig.startsWith('a{')) {
    const [, v] = splitTypes(sig.slice(2, -1));
    return Type.Record(Type.String(), schemaOf(v!));
  }
  if (sig.startsWith('a')) return Type.Array(schemaOf(sig.slice(1)));
  if (sig.startsWith('(')) return Type.Tuple(splitTypes(sig.slice(1, -1)).map(schemaOf));
  switch (sig) {
    case 's':
    case 'o':
      return Type.String();
    case 'b':
      return Type.Boolean();
    case 'i':
    case 'u':
    case 'x':
    case 't':
      return Type.Integer();
    case 'v':
      return Type.Unknown();
    default:
      throw new TuxsecError(ErrorCodes.internal, `cannot describe D-Bus type "${sig}": unsupported`);
  }
}

/** The reply shapes the module reads (first value of a reply, after {@link unwrap}). */
export const R = {
  string: Type.String(),
  strings: Type.Array(Type.String()),
  bool: Type.Boolean(),
  dict: Type.Record(Type.String(), Type.Unknown()),
  /** `(ssssa{ss}as)`: version, short, description, type, options, entries. */
  ipset: Type.Tuple([Type.String(), Type.String(), Type.String(), Type.String(), Type.Record(Type.String(), Type.String()), Type.Array(Type.String())]),
  any: Type.Unknown(),
};

/** A permanent or runtime settings dict: known keys have their own shape, others pass. */
export const SettingsDict = Type.Object(
  Object.fromEntries(Object.entries(SETTING_SIGNATURES).map(([k, sig]) => [k, Type.Optional(schemaOf(sig))])),
  { additionalProperties: true },
);


/** A short description of what a value is, for error messages. */
export function describe(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** `v` when it matches `schema`; else `action-failed` naming what was expected and what came. */
export function expect<T extends TSchema>(schema: T, v: unknown, what: string): Static<T> {
  const c = compiled(schema);
  if (c.Check(v)) return v;
  const first = c.Errors(v).First();
  const where = first?.path ? ` at ${first.path}` : '';
  throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: firewalld replied with an unexpected value${where}: ${describe(first?.value ?? v)}`);
}

/** Turns dbus-next values (Variants, BigInts, nested arrays) into plain JSON values. */
export function unwrap(v: unknown): unknown {
  if (v instanceof Variant) return unwrap(v.value);
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(unwrap);
  if (Buffer.isBuffer(v)) return [...v];
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = unwrap(x);
    return o;
  }
  return v;
}

/** Builds an a{sv} body from plain values. */
export function toVariantDict(settings: Record<string, unknown>): Record<string, InstanceType<typeof Variant>> {
  const out: Record<string, InstanceType<typeof Variant>> = {};
  for (const [k, v] of Object.entries(settings)) {
    const sig = SETTING_SIGNATURES[k];
    if (!sig) throw new TuxsecError(ErrorCodes.internal, `cannot encode firewalld setting "${k}": unknown key`);
    out[k] = new Variant(sig, v);
  }
  return out;
}
