/**
 * firewalld's D-Bus API as typed calls: runtime interfaces on /org/fedoraproject/FirewallD1,
 * permanent configuration on /org/fedoraproject/FirewallD1/config/*. Tracks whether firewalld
 * owns its name (NameOwnerChanged from the bus itself) and records the signals sent by that owner
 * for drift detection; signals from anyone else are dropped.
 */
import { EventEmitter } from 'node:events';
import type { Static, TSchema } from '@sinclair/typebox';
import type { DbusClient, DbusSignal } from '../../../os/dbus.ts';
import { DbusRemoteError } from '../../../os/dbus.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { R, expect, unwrap } from './signature.ts';

export const FW_NAME = 'org.fedoraproject.FirewallD1';
export const FW_PATH = '/org/fedoraproject/FirewallD1';
export const FW_CONFIG_PATH = '/org/fedoraproject/FirewallD1/config';
export const IFACE = {
  main: FW_NAME,
  zone: `${FW_NAME}.zone`,
  policy: `${FW_NAME}.policy`,
  ipset: `${FW_NAME}.ipset`,
  direct: `${FW_NAME}.direct`,
  policies: `${FW_NAME}.policies`,
  config: `${FW_NAME}.config`,
  configZone: `${FW_NAME}.config.zone`,
  configService: `${FW_NAME}.config.service`,
  configIpset: `${FW_NAME}.config.ipset`,
  configPolicy: `${FW_NAME}.config.policy`,
  configDirect: `${FW_NAME}.config.direct`,
  configPolicies: `${FW_NAME}.config.policies`,
} as const;

/** The permanent configuration root, to spread into a {@link FwCall}. */
export const CONFIG = { path: FW_CONFIG_PATH, iface: IFACE.config } as const;

/** One firewalld method call. */
export interface FwCall {
  /** Object path; default the main object {@link FW_PATH}. */
  path?: string;
  iface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** The operation, for error messages (`cannot <what>: ...`); default the member name. */
  what?: string;
  timeoutMs?: number;
}

/** The kinds of named objects in the permanent configuration. */
export type ConfigKind = 'zone' | 'service' | 'ipset' | 'policy' | 'helper' | 'icmptype';

const BY_NAME: Record<ConfigKind, string> = {
  zone: 'getZoneByName',
  service: 'getServiceByName',
  ipset: 'getIPSetByName',
  policy: 'getPolicyByName',
  helper: 'getHelperByName',
  icmptype: 'getIcmpTypeByName',
};

/** One recorded firewalld signal. */
export interface SignalRecord {
  at: string;
  interface: string;
  member: string;
  /** First argument when it is a string (zone, ipset, service...). */
  subject?: string;
}

export interface SignalStats {
  total: number;
  byMember: Record<string, number>;
  recent: SignalRecord[];
  lastAt: string | null;
}

const RECENT_MAX = 50;
/**
 * Distinct signal names counted one by one; firewalld has about 60. Beyond this they are counted
 * under {@link OTHER_KEY}, so no sender can grow the map without bound.
 */
export const BY_MEMBER_MAX = 128;
export const OTHER_KEY = '(other)';
/** Cached object paths; names come from validated requests, but a bound costs nothing. */
const PATH_CACHE_MAX = 1024;
const BUS_NAME = 'org.freedesktop.DBus';
/** firewalld error names that mean "what you named does not exist". */
const NOT_FOUND = new Set(['INVALID_ZONE', 'INVALID_SERVICE', 'INVALID_IPSET', 'INVALID_POLICY', 'INVALID_HELPER', 'INVALID_ICMPTYPE']);
/** firewalld error names that mean "already in that state": success with changed:false. */
export const NOOP_ERRORS = new Set(['ALREADY_ENABLED', 'NOT_ENABLED', 'ZONE_ALREADY_SET', 'ALREADY_SET']);

/** Splits firewalld's "CODE: text" exception message. */
export function firewalldErrorCode(e: unknown): string | null {
  if (!(e instanceof DbusRemoteError)) return null;
  const m = /^([A-Z_]+)(?::|$)/.exec(e.message);
  return m ? m[1]! : null;
}

/**
 * Client of one firewalld. All calls go through {@link call}, which maps D-Bus errors to
 * stable TuxSec codes.
 */
export class FirewalldClient extends EventEmitter {
  private owner: string | null = null;
  private watching = false;
  private readonly stats: SignalStats = { total: 0, byMember: Object.create(null) as Record<string, number>, recent: [], lastAt: null };
  private readonly pathCache = new Map<string, string>();
  /** Bumped whenever firewalld restarts or reloads: cached object paths are then stale. */
  generation = 0;

  constructor(
    readonly bus: DbusClient,
    private readonly timeoutMs = 15_000,
  ) {
    super();
    bus.on('signal', (s: DbusSignal) => this.onSignal(s));
    bus.on('disconnected', () => {
      this.setOwner(null);
    });
    bus.on('connected', () => {
      void this.refreshOwner();
    });
  }

  /** Subscribes to NameOwnerChanged and firewalld's signals; safe to call again. */
  async watch(): Promise<void> {
    if (this.watching) return;
    this.watching = true;
    await this.bus.addMatch(`type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${FW_NAME}'`);
    await this.bus.addMatch(`type='signal',sender='${FW_NAME}'`);
    await this.refreshOwner();
  }

  /** Asks the bus who owns firewalld's name now. */
  async refreshOwner(): Promise<string | null> {
    try {
      const [owner] = await this.bus.call({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'GetNameOwner',
        signature: 's',
        body: [FW_NAME],
      }, { timeoutMs: 3000 });
      this.setOwner(typeof owner === 'string' ? owner : null);
    } catch {
      this.setOwner(null);
    }
    return this.owner;
  }

  private setOwner(owner: string | null): void {
    if (owner === this.owner) return;
    this.owner = owner;
    this.pathCache.clear();
    this.generation++;
    this.emit(owner ? 'up' : 'down');
  }

  /** Whether firewalld owned its bus name at the last check. */
  get running(): boolean {
    return this.owner !== null;
  }

  private onSignal(s: DbusSignal): void {
    // Any local user may send a signal straight to our connection, bypassing the match rules;
    // only the sender, which the bus daemon sets, tells the real ones apart.
    if (s.interface === BUS_NAME && s.member === 'NameOwnerChanged') {
      if (s.sender !== BUS_NAME) return;
      if (s.body[0] === FW_NAME) this.setOwner(typeof s.body[2] === 'string' && s.body[2] !== '' ? s.body[2] : null);
      return;
    }
    if (!s.interface?.startsWith(FW_NAME)) return;
    if (this.owner === null || s.sender !== this.owner) return;
    // Config objects come and go (reload, add, remove, rename): cached paths may be stale.
    if (s.member === 'Reloaded' || (s.interface.startsWith(IFACE.config) && /^(Removed|Renamed|[A-Za-z]*Added)$/.test(s.member))) this.pathCache.clear();
    const rec: SignalRecord = { at: new Date().toISOString(), interface: s.interface, member: s.member };
    if (typeof s.body[0] === 'string') rec.subject = s.body[0].slice(0, 200);
    this.stats.total++;
    let key = `${s.interface.slice(FW_NAME.length + 1) || 'main'}.${s.member}`;
    if (!Object.hasOwn(this.stats.byMember, key) && Object.keys(this.stats.byMember).length >= BY_MEMBER_MAX) key = OTHER_KEY;
    this.stats.byMember[key] = (this.stats.byMember[key] ?? 0) + 1;
    this.stats.recent.push(rec);
    if (this.stats.recent.length > RECENT_MAX) this.stats.recent.shift();
    this.stats.lastAt = rec.at;
    this.emit('fw-signal', rec);
  }

  signalStats(): SignalStats {
    return { ...this.stats, byMember: { ...this.stats.byMember }, recent: [...this.stats.recent] };
  }

  /** Calls a firewalld method; D-Bus errors become TuxSec errors saying `cannot <what>`. */
  async call(c: FwCall): Promise<unknown[]> {
    const body = { destination: FW_NAME, path: c.path ?? FW_PATH, interface: c.iface, member: c.member, signature: c.signature ?? '', body: c.body ?? [] };
    try {
      return await this.bus.call(body, { timeoutMs: c.timeoutMs ?? this.timeoutMs });
    } catch (e) {
      throw this.mapError(e, c.what ?? c.member);
    }
  }

  /** The first value of a reply, unwrapped and checked against `reply` (a wrong shape is an error, not a cast). */
  async get<T extends TSchema>(c: FwCall, reply: T): Promise<Static<T>> {
    const [v] = await this.call(c);
    return expect(reply, unwrap(v), c.what ?? c.member);
  }

  /** Object path of a named permanent object, or null when it does not exist. */
  async configPath(kind: ConfigKind, name: string): Promise<string | null> {
    const key = `${kind}:${name}`;
    const hit = this.pathCache.get(key);
    if (hit) return hit;
    try {
      const [p] = await this.bus.call(
        { destination: FW_NAME, path: FW_CONFIG_PATH, interface: IFACE.config, member: BY_NAME[kind], signature: 's', body: [name] },
        { timeoutMs: this.timeoutMs },
      );
      const found = expect(R.string, p, `find permanent ${kind} "${name}"`);
      if (this.pathCache.size >= PATH_CACHE_MAX) this.pathCache.clear();
      this.pathCache.set(key, found);
      return found;
    } catch (e) {
      const code = firewalldErrorCode(e);
      if (code && NOT_FOUND.has(code)) return null;
      throw this.mapError(e, `find permanent ${kind} "${name}"`);
    }
  }

  /** Like {@link configPath} but not-found is an error. */
  async mustConfigPath(kind: ConfigKind, name: string): Promise<string> {
    const p = await this.configPath(kind, name);
    if (!p) throw new TuxsecError(ErrorCodes.notFound, `cannot find permanent ${kind} "${name}": no such ${kind}`, { [kind]: name });
    return p;
  }

  /** Forgets cached object paths (after a rename, delete or reload). */
  forgetPaths(): void {
    this.pathCache.clear();
  }

  /** A property of the main object or the config object. */
  async property(path: string, iface: string, prop: string): Promise<unknown> {
    return this.get({ path, iface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [iface, prop], what: `read property ${prop}` }, R.any);
  }

  mapError(e: unknown, what: string): Error {
    if (e instanceof TuxsecError) {
      if (e.code === ErrorCodes.serviceUnavailable) {
        return new TuxsecError(ErrorCodes.firewalldNotRunning, `cannot ${what}: the system D-Bus is not reachable`);
      }
      return e;
    }
    if (e instanceof DbusRemoteError) {
      if (
        e.errorName === 'org.freedesktop.DBus.Error.ServiceUnknown' ||
        e.errorName === 'org.freedesktop.DBus.Error.NameHasNoOwner' ||
        e.errorName === 'org.freedesktop.DBus.Error.NoReply'
      ) {
        this.setOwner(null);
        return new TuxsecError(ErrorCodes.firewalldNotRunning, `cannot ${what}: firewalld is not running`);
      }
      const code = firewalldErrorCode(e);
      const text = e.message.replace(/[\r\n]+/g, ' ').slice(0, 300);
      if (code && NOT_FOUND.has(code)) {
        const noun = code.slice('INVALID_'.length).toLowerCase().replace('icmptype', 'ICMP type').replace('ipset', 'ipset');
        return new TuxsecError(ErrorCodes.notFound, `cannot ${what}: no such ${noun} (${text})`, { firewalld: code });
      }
      if (code === 'NAME_CONFLICT') return new TuxsecError(ErrorCodes.conflict, `cannot ${what}: ${text}`, { firewalld: code });
      if (code && (code.startsWith('INVALID_') || code === 'MISSING_NAME')) {
        return new TuxsecError(ErrorCodes.invalidParams, `cannot ${what}: ${text}`, { firewalld: code });
      }
      if (e.errorName === 'org.freedesktop.DBus.Error.AccessDenied' || code === 'ACCESS_DENIED') {
        return new TuxsecError(ErrorCodes.permissionDenied, `cannot ${what}: ${text}`, { firewalld: code });
      }
      return new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: ${text}`, code ? { firewalld: code } : undefined);
    }
    return new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
