/**
 * What every action group shares: the firewalld client, the change guard, write-parameter
 * helpers, and the generic "element of a zone" operation (runtime or permanent).
 */
import type { TProperties } from '@sinclair/typebox';
import { Params } from '../../../sdk/schema.ts';
import type { FirewalldClient } from './dbus.ts';
import { IFACE, NOOP_ERRORS, firewalldErrorCode } from './dbus.ts';
import type { ChangeGuard, Scope, WriteOptions, WriteResult, WriteSpec } from './safety.ts';
import { P } from './validate.ts';
import { TuxsecError } from '../../../protocol/errors.ts';

export interface Deps {
  fw: FirewalldClient;
  guard: ChangeGuard;
}

/** Parameters of a write: its own plus dry_run, and confirm_timeout when it can be rolled back. */
export function writeParams<T extends TProperties>(props: T, opts: { permanent?: boolean; confirm?: boolean } = {}) {
  return Params({
    ...props,
    ...(opts.permanent ? { permanent: P.permanent() } : {}),
    dry_run: P.dryRun(),
    ...(opts.confirm === false ? {} : { confirm_timeout: P.confirmTimeout() }),
  });
}

/** Runs a write through the guard. */
export function write(d: Deps, spec: WriteSpec, params: { dry_run?: boolean; confirm_timeout?: number }): Promise<WriteResult> {
  return d.guard.run(spec, { dry_run: params.dry_run, confirm_timeout: params.confirm_timeout });
}

/** Runs an apply step; firewalld's "already so" errors become `false` (race-safe idempotence). */
export async function applyIdem(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    const fwCode = e instanceof TuxsecError ? (e.details?.firewalld as string | undefined) : firewalldErrorCode(e);
    if (fwCode && NOOP_ERRORS.has(fwCode)) return false;
    throw e;
  }
}

export const where = (permanent?: boolean): string => (permanent ? 'permanent' : 'runtime');

/*
 * Decoding of firewalld's a{sv} settings, which omit empty keys and carry ports as tuples.
 */
type Tuple = string[];
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const strs = (v: unknown): string[] => arr(v).map(String);
/** `[port, protocol]` tuples as objects. */
export const portProtos = (v: unknown) => arr(v).map((t) => ({ port: String((t as Tuple)[0]), protocol: String((t as Tuple)[1]) }));
/** `[port, protocol, to_port, to_addr]` tuples as objects. */
export const forwardPorts = (v: unknown) =>
  arr(v).map((t) => {
    const [port, protocol, to_port, to_addr] = (t as Tuple).map(String);
    return { port: port!, protocol: protocol!, to_port: to_port ?? '', to_addr: to_addr ?? '' };
  });

/** The named objects of the permanent configuration that actions create and delete. */
export type PermanentKind = 'zone' | 'policy' | 'service' | 'ipset';

/**
 * A write that creates a permanent object by calling `method` on the configuration root with
 * `signature`/`args`. `detail` is added to the description (`create ipset "x" of type "y"`).
 */
export function createPermanent(
  d: Deps,
  p: WriteOptions,
  o: { kind: PermanentKind; name: string; method: string; signature: string; args: unknown[]; detail?: string },
): Promise<WriteResult> {
  const obj = `${o.kind} "${o.name}"`;
  return write(
    d,
    {
      what: `create ${obj}${o.detail ?? ''} (permanent)`,
      scopes: [{ kind: o.kind, name: o.name }],
      check: async () => (await d.fw.configPath(o.kind, o.name)) === null,
      apply: async () => {
        await d.fw.cfg(IFACE.config, o.method, o.signature, o.args, `create ${obj}`);
        d.fw.forgetPaths();
      },
    },
    p,
  );
}

/** A write that deletes a permanent object through `remove` on its own interface `iface`. */
export function deletePermanent(d: Deps, p: WriteOptions, o: { kind: PermanentKind; name: string; iface: string }): Promise<WriteResult> {
  const obj = `${o.kind} "${o.name}"`;
  return write(
    d,
    {
      what: `delete ${obj} (permanent)`,
      scopes: [{ kind: o.kind, name: o.name }],
      check: async () => (await d.fw.configPath(o.kind, o.name)) !== null,
      apply: async () => {
        const path = await d.fw.configPath(o.kind, o.name);
        if (!path) return false;
        await d.fw.call(path, o.iface, 'remove', '', [], `delete ${obj}`);
        d.fw.forgetPaths();
        return true;
      },
    },
    p,
  );
}

/**
 * A zone element firewalld manages with add/remove/query methods of the same stem
 * (`addService`, `queryService`...). `timeout` says whether the runtime add takes a timeout.
 */
export interface ElementKind {
  stem: string;
  timeout: boolean;
  /** Noun for messages: `service "http"`. */
  noun: string;
}

export const EL = {
  service: { stem: 'Service', timeout: true, noun: 'service' },
  port: { stem: 'Port', timeout: true, noun: 'port' },
  protocol: { stem: 'Protocol', timeout: true, noun: 'protocol' },
  sourcePort: { stem: 'SourcePort', timeout: true, noun: 'source port' },
  icmpBlock: { stem: 'IcmpBlock', timeout: true, noun: 'ICMP block' },
  richRule: { stem: 'RichRule', timeout: true, noun: 'rich rule' },
  iface: { stem: 'Interface', timeout: false, noun: 'interface' },
  source: { stem: 'Source', timeout: false, noun: 'source' },
  masquerade: { stem: 'Masquerade', timeout: true, noun: 'masquerade' },
  icmpInversion: { stem: 'IcmpBlockInversion', timeout: false, noun: 'ICMP block inversion' },
  forwardPort: { stem: 'ForwardPort', timeout: true, noun: 'forward port' },
} satisfies Record<string, ElementKind>;

/** Query/add/remove of one zone element in runtime or permanent configuration. */
export function zoneElement(d: Deps, kind: ElementKind, zone: string, args: string[], permanent: boolean | undefined, what?: string) {
  const fw = d.fw;
  const n = 's'.repeat(args.length);
  const label = `${kind.noun}${args.length ? ` ${JSON.stringify(args.filter((a) => a !== '').join('/'))}` : ''}`;
  const target = `zone "${zone}" (${where(permanent)})`;
  if (permanent) {
    const path = () => fw.mustConfigPath('zone', zone);
    return {
      label,
      target,
      query: async () => (await fw.call(await path(), IFACE.configZone, `query${kind.stem}`, n, args, what ?? `query ${label} in ${target}`))[0] === true,
      add: async () => void (await fw.call(await path(), IFACE.configZone, `add${kind.stem}`, n, args, what ?? `add ${label} to ${target}`)),
      remove: async () => void (await fw.call(await path(), IFACE.configZone, `remove${kind.stem}`, n, args, what ?? `remove ${label} from ${target}`)),
    };
  }
  return {
    label,
    target,
    query: async () => (await fw.rt(IFACE.zone, `query${kind.stem}`, `s${n}`, [zone, ...args], what ?? `query ${label} in ${target}`))[0] === true,
    add: async () =>
      void (await fw.rt(IFACE.zone, `add${kind.stem}`, `s${n}${kind.timeout ? 'i' : ''}`, [zone, ...args, ...(kind.timeout ? [0] : [])], what ?? `add ${label} to ${target}`)),
    remove: async () => void (await fw.rt(IFACE.zone, `remove${kind.stem}`, `s${n}`, [zone, ...args], what ?? `remove ${label} from ${target}`)),
  };
}

/** A write that adds (want=true) or removes a zone element, idempotently. */
export function toggleZoneElement(
  d: Deps,
  kind: ElementKind,
  p: { zone: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number },
  args: string[],
  want: boolean,
  extraScopes: Scope[] = [],
): Promise<WriteResult> {
  const probe = zoneElement(d, kind, p.zone, args, p.permanent);
  const what = want ? `add ${probe.label} to ${probe.target}` : `remove ${probe.label} from ${probe.target}`;
  const el = zoneElement(d, kind, p.zone, args, p.permanent, what);
  return write(
    d,
    {
      what,
      scopes: [{ kind: 'zone', name: p.zone }, ...extraScopes],
      check: async () => (await el.query()) !== want,
      apply: () => applyIdem(want ? el.add : el.remove),
    },
    p,
  );
}
