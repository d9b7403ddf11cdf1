/**
 * What every action group shares: the firewalld client, the change guard, write-parameter
 * helpers, creation and deletion of permanent objects, and the generic "element of a zone"
 * operation (runtime or permanent).
 */
import type { Static, TObject, TProperties } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import type { FirewalldClient } from './dbus.ts';
import { CONFIG, FW_CONFIG_PATH, IFACE, NOOP_ERRORS, firewalldErrorCode } from './dbus.ts';
import type { ChangeGuard, Scope, WriteOptions, WriteResult, WriteSpec } from './change-guard.ts';
import { R, expect } from './signature.ts';
import { removePermanent, type ObjectKind, type ObjectName } from './objects.ts';
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

/** An action that changes nothing, with parameters `props` (access class `read` unless said). */
export function reader<T extends TProperties, R>(
  name: string,
  description: string,
  props: T,
  handler: (p: Static<TObject<T>>) => Promise<R> | R,
  access: 'read' | 'dangerous' = 'read',
): AnyAction {
  // TypeBox cannot relate TObject<T> to TObject for a generic T; the pair is typed at the call site.
  const params = Params(props) as unknown as TObject;
  return defineAction({ name, description, params, access, handler: handler as (p: Static<TObject>) => Promise<R> | R });
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

/** Where a call goes: interface `runtime` of the main object, or `config` on the configuration root. */
export const on = (permanent: boolean | undefined, runtime: string, config: string): { path?: string; iface: string } =>
  permanent ? { path: FW_CONFIG_PATH, iface: config } : { iface: runtime };

/**
 * A write that creates a permanent object (`settings` in the kind's own signature).
 * `detail` is added to the description (`create ipset "x" of type "y"`).
 */
export function createPermanent(d: Deps, p: WriteOptions, o: { object: ObjectKind; name: string; settings: unknown; detail?: string }): Promise<WriteResult> {
  const { kind, permanent } = o.object;
  const obj = `${kind} "${o.name}"`;
  return write(
    d,
    {
      what: `create ${obj}${o.detail ?? ''} (permanent)`,
      scopes: [{ kind: kind as ObjectName, name: o.name }],
      check: async () => (await d.fw.configPath(kind, o.name)) === null,
      apply: async () => {
        await d.fw.call({ ...CONFIG, member: permanent!.add, signature: `s${permanent!.signature}`, body: [o.name, o.settings], what: `create ${obj}` });
        d.fw.forgetPaths();
      },
    },
    p,
  );
}

/** A write that deletes a permanent object. */
export function deletePermanent(d: Deps, p: WriteOptions, o: { object: ObjectKind; name: string }): Promise<WriteResult> {
  const kind = o.object.kind;
  const obj = `${kind} "${o.name}"`;
  return write(
    d,
    {
      what: `delete ${obj} (permanent)`,
      scopes: [{ kind: kind as ObjectName, name: o.name }],
      check: async () => (await d.fw.configPath(kind, o.name)) !== null,
      apply: async () => {
        const path = await d.fw.configPath(kind, o.name);
        if (!path) return false;
        await removePermanent(d.fw, o.object, path, `delete ${obj}`);
        return true;
      },
    },
    p,
  );
}

/** `[name, description, parameters]` of an action. */
type Declared = [string, string, TProperties];

/**
 * The create and delete actions of a kind of permanent object; the object's name is the
 * parameter named after its kind (`zone`, `ipset`...). `permanent` adds the `permanent`
 * parameter and `permanent: true` to the result; `settings` and `detail` shape the creation.
 */
export function createDelete(
  d: Deps,
  object: ObjectKind,
  o: { create: Declared; delete: Declared; permanent?: boolean; settings?: (p: Record<string, unknown>) => unknown; detail?: (p: Record<string, unknown>) => string },
): AnyAction[] {
  const named = (p: Record<string, unknown>) => String(p[object.kind]);
  const mark = async (r: Promise<WriteResult>) => (o.permanent ? { ...(await r), permanent: true } : r);
  const declare = ([name, description, props]: Declared, handler: (p: Record<string, unknown> & WriteOptions) => Promise<unknown>) =>
    defineAction({ name, description, params: writeParams(props, { permanent: o.permanent }) as unknown as TObject, access: 'write', handler });
  return [
    declare(o.create, (p) => mark(createPermanent(d, p, { object, name: named(p), settings: o.settings?.(p) ?? {}, detail: o.detail?.(p) }))),
    declare(o.delete, (p) => mark(deletePermanent(d, p, { object, name: named(p) }))),
  ];
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
  const call = async (verb: 'query' | 'add' | 'remove', msg: string) => {
    const member = `${verb}${kind.stem}`;
    if (permanent) return fw.call({ path: await fw.mustConfigPath('zone', zone), iface: IFACE.configZone, member, signature: n, body: args, what: msg });
    const timeout = verb === 'add' && kind.timeout;
    return fw.call({ iface: IFACE.zone, member, signature: `s${n}${timeout ? 'i' : ''}`, body: [zone, ...args, ...(timeout ? [0] : [])], what: msg });
  };
  return {
    label,
    target,
    query: async () => {
      const w = what ?? `query ${label} in ${target}`;
      return expect(R.bool, (await call('query', w))[0], w);
    },
    add: async () => void (await call('add', what ?? `add ${label} to ${target}`)),
    remove: async () => void (await call('remove', what ?? `remove ${label} from ${target}`)),
  };
}

/** A write that adds (want=true) or removes a zone element, idempotently. */
export function toggleZoneElement(
  d: Deps,
  kind: ElementKind,
  p: ZoneWrite,
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

/** Parameters every zone-element write has. */
type ZoneWrite = { zone: string; permanent?: boolean; dry_run?: boolean; confirm_timeout?: number };

/**
 * The add/remove pair of actions toggling one zone element: `add` and `remove` are each
 * `[name, description]`, `props` the parameters besides zone and the write options, and `args`
 * turns the parameters into the element's D-Bus arguments (checking them first).
 */
export function zonePair<T extends TProperties>(
  d: Deps,
  kind: ElementKind,
  names: { add: [string, string]; remove: [string, string] },
  props: T,
  args: (p: Static<TObject<T>>) => string[],
): AnyAction[] {
  const params = writeParams({ zone: P.zone(), ...props }, { permanent: true }) as unknown as TObject;
  return ([[names.add, true], [names.remove, false]] as const).map(([[name, description], want]) =>
    defineAction({
      name,
      description,
      params,
      access: 'write',
      // The schema above validated `p`: the zone, the write options and `props`.
      handler: (p) => toggleZoneElement(d, kind, p as ZoneWrite, args(p as unknown as Static<TObject<T>>), want),
    }),
  );
}
