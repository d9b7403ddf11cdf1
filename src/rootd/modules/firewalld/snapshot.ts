/**
 * Snapshots for rollback: what a write touches (a scope), read before the write and put back
 * when it is not confirmed. Named objects go through their descriptors (objects.ts); the three
 * daemon-wide settings are described here.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { CONFIG, IFACE, type FirewalldClient, type FwCall } from './dbus.ts';
import { OBJECTS, listNames, removePermanent, type ObjectKind } from './objects.ts';
import { R } from './signature.ts';

/** What a write touches, as far as rollback is concerned. */
export type Scope =
  | { kind: 'zone'; name: string }
  | { kind: 'policy'; name: string }
  | { kind: 'service'; name: string }
  | { kind: 'ipset'; name: string }
  | { kind: 'default_zone' }
  | { kind: 'log_denied' }
  | { kind: 'panic' };

export function scopeKey(s: Scope): string {
  return 'name' in s ? `${s.kind}:${s.name}` : s.kind;
}

export interface Snapshot {
  scope: Scope;
  runtime: unknown;
  permanent: unknown;
}

type GlobalScope = Exclude<Scope, { name: string }>['kind'];

/** A daemon-wide setting: how to read it and how to set it back to `v`. */
interface Global {
  get: string;
  shape: TSchema;
  set: (v: never) => FwCall;
}

const LOG_DENIED = Type.Union(['all', 'unicast', 'broadcast', 'multicast', 'off'].map((t) => Type.Literal(t)));

const GLOBALS: Record<GlobalScope, Global> = {
  default_zone: { get: 'getDefaultZone', shape: R.string, set: (v: string) => ({ iface: IFACE.main, member: 'setDefaultZone', signature: 's', body: [v], what: 'restore default zone' }) },
  log_denied: { get: 'getLogDenied', shape: LOG_DENIED, set: (v: string) => ({ iface: IFACE.main, member: 'setLogDenied', signature: 's', body: [v], what: 'restore log denied' }) },
  panic: { get: 'queryPanicMode', shape: R.bool, set: (v: boolean) => ({ iface: IFACE.main, member: v ? 'enablePanicMode' : 'disablePanicMode', what: 'restore panic mode' }) },
};

/** Names in a saved scope: whatever firewalld itself could hold, bounded and without control characters. */
const NAME = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const STRICT = { additionalProperties: false };
const nullOr = (s: TSchema) => Type.Union([Type.Null(), s]);

/** The shape of one snapshot, as saved in the pending-changes file. */
export const SnapshotSchema = Type.Union([
  ...Object.values(OBJECTS).map((o: ObjectKind) =>
    Type.Object(
      {
        scope: Type.Object({ kind: Type.Literal(o.kind), name: NAME }, STRICT),
        runtime: o.runtime ? nullOr(o.runtime.shape) : Type.Null(),
        permanent: nullOr(o.settings.shape),
      },
      STRICT,
    ),
  ),
  ...Object.entries(GLOBALS).map(([kind, g]) =>
    Type.Object(
      {
        scope: Type.Object({ kind: Type.Literal(kind) }, STRICT),
        runtime: kind === 'default_zone' ? NAME : g.shape,
        permanent: Type.Null(),
      },
      STRICT,
    ),
  ),
]);

/** Reads and restores the state behind a scope. */
export class Snapshotter {
  constructor(private readonly fw: FirewalldClient) {}

  async take(scope: Scope): Promise<Snapshot> {
    const fw = this.fw;
    if (!('name' in scope)) return { scope, runtime: await fw.get({ iface: IFACE.main, member: GLOBALS[scope.kind].get }, GLOBALS[scope.kind].shape), permanent: null };
    const o: ObjectKind = OBJECTS[scope.kind];
    const rt = o.runtime;
    const runtime =
      rt && (await listNames(fw, o)).includes(scope.name) ? await fw.get({ iface: o.settings.iface, member: rt.get, signature: 's', body: [scope.name] }, rt.shape) : null;
    const path = await fw.configPath(o.kind, scope.name);
    const permanent = path ? await fw.get({ path, iface: o.configIface, member: o.settings.permanent, what: `read ${o.kind}` }, o.settings.shape) : null;
    return { scope, runtime, permanent };
  }

  async restore(snap: Snapshot): Promise<void> {
    const fw = this.fw;
    const s = snap.scope;
    if (!('name' in s)) {
      const g = GLOBALS[s.kind];
      if ((await fw.get({ iface: IFACE.main, member: g.get }, g.shape)) !== snap.runtime) await fw.call(g.set(snap.runtime as never));
      return;
    }
    const o: ObjectKind = OBJECTS[s.kind];
    await this.restorePermanent(o, s.name, snap.permanent);
    const rt = o.runtime;
    if (rt && snap.runtime && (await listNames(fw, o)).includes(s.name)) {
      const body = rt.encode ? rt.encode(snap.runtime as never) : snap.runtime;
      await fw.call({ iface: o.settings.iface, member: rt.set, signature: `s${rt.signature}`, body: [s.name, body], what: `restore runtime ${o.kind} "${s.name}"` });
    }
  }

  /** Recreates, updates or removes a permanent object so it matches the snapshot. */
  private async restorePermanent(o: ObjectKind, name: string, before: unknown): Promise<void> {
    const fw = this.fw;
    const p = o.permanent!;
    fw.forgetPaths();
    const path = await fw.configPath(o.kind, name);
    if (before === null) {
      if (path) await removePermanent(fw, o, path, `remove permanent ${o.kind} "${name}"`);
      fw.forgetPaths();
      return;
    }
    const body = p.encode ? p.encode(before as never) : before;
    if (path) {
      await fw.call({ path, iface: o.configIface, member: p.update, signature: p.signature, body: [body], what: `restore permanent ${o.kind} "${name}"` });
    } else {
      await fw.call({ ...CONFIG, member: p.add, signature: `s${p.signature}`, body: [name, body], what: `recreate permanent ${o.kind} "${name}"` });
      fw.forgetPaths();
    }
  }
}
