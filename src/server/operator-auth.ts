/**
 * Who is calling the operator API: the admin token (Bearer, for automation) or a user's login
 * session (the `__Host-tuxsec_session` cookie of the console). Sessions: 32 random bytes, only their
 * sha256 stored, ended by idle time, absolute age, logout, a password change, user removal or revoke.
 * A request authenticated by cookie that changes something must carry the session's CSRF token and,
 * when it says where it comes from (Origin), come from the server's own origin.
 * Logins are throttled per user name and per address, in bounded maps.
 */
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';
import { audited } from './audit.ts';
import { limit, type ServerConfigForApp, type ServerContext } from './context.ts';
import { ADMIN_TOKEN_OPERATOR, requireRole, type Operator, type Role } from './operators.ts';
import { PasswordHasher } from './passwords.ts';
import { hashSecret, newSecret, secretMatches } from './secrets.ts';
import type { SessionRecord, UserRecord } from './storage/auth-store.ts';
import type { Storage } from './storage/storage.ts';

/**
 * The `__Host-` prefix makes a browser take the cookie only with Secure, Path=/ and no Domain: a
 * page of a sibling or subdomain, a plain-HTTP page or a narrower Path cannot set or shadow it.
 */
export const SESSION_COOKIE = '__Host-tuxsec_session';
/** A session id as newSecret makes it: anything else is not looked up. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/** Most keys a throttle map holds: past it the key that matters least is forgotten (FailureWindow). */
const THROTTLE_KEYS = 10_000;
/** Logins of one address being checked at once: one address cannot fill the hashing queue. */
export const LOGINS_IN_FLIGHT_PER_ADDRESS = 4;
/** A session's last use is written at most this often (one write per request would be wasteful). */
const TOUCH_EVERY_MS = 1000;

/**
 * Failures per key within a sliding window; a key with `max` of them waits until the oldest ages out.
 * At most `cap` keys: past it, a key with no failure left in the window is forgotten first, then
 * the one with the fewest failures that failed longest ago. Made-up names failing once each (from
 * as many addresses as an attacker holds) so never push out a name that is being guessed: only keys
 * with as many failures can, and `cap` of those cost `cap` x `max` hashed logins within one window.
 */
export class FailureWindow {
  private readonly m = new Map<string, number[]>();
  /** tiers[n - 1]: the keys holding n failures, in the order they last failed (made when first needed). */
  private readonly tiers: Array<Set<string> | undefined> = [];

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly cap = THROTTLE_KEYS,
  ) {}

  private live(key: string, now: number): number[] {
    const list = (this.m.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length === 0) this.clear(key);
    return list;
  }

  /** Seconds until `key` may try again; 0 now. */
  retryAfter(key: string, now: number): number {
    const list = this.live(key, now);
    if (list.length < this.max) return 0;
    return Math.max(1, Math.ceil((list[list.length - this.max]! + this.windowMs - now) / 1000));
  }

  fail(key: string, now: number): void {
    const list = this.live(key, now);
    list.push(now);
    this.clear(key);
    // Only the newest `max` matter; the key goes to the end of its tier (most recently failed).
    const kept = list.slice(-this.max);
    this.m.set(key, kept);
    (this.tiers[kept.length - 1] ??= new Set()).add(key);
    while (this.m.size > this.cap) this.evict(now);
  }

  /** Forgets one key: the first one with nothing live, else the oldest of the lowest tier. */
  private evict(now: number): void {
    let victim: string | undefined;
    for (const tier of this.tiers) {
      const first = tier?.values().next().value;
      if (first === undefined) continue;
      victim ??= first;
      if (this.m.get(first)!.at(-1)! <= now - this.windowMs) {
        victim = first;
        break;
      }
    }
    this.clear(victim!);
  }

  clear(key: string): void {
    const list = this.m.get(key);
    if (list === undefined) return;
    this.tiers[list.length - 1]?.delete(key);
    this.m.delete(key);
  }

  get size(): number {
    return this.m.size;
  }
}

/** The session id in a Cookie header, or null. */
export function sessionCookie(header: string | undefined): string | null {
  if (header === undefined || header.length > 8192) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) {
      const v = part.slice(i + 1).trim();
      return SESSION_ID.test(v) ? v : null;
    }
  }
  return null;
}

export interface LoginOutcome {
  user: UserRecord;
  session: SessionRecord;
  /** The session id for the cookie; never stored. */
  id: string;
}

export function userView(u: UserRecord) {
  return { name: u.name, role: u.role, selector: u.selector };
}

export class OperatorAuth {
  readonly hasher: PasswordHasher;
  private readonly inFlight = new Map<string, number>();
  readonly perUser: FailureWindow;
  readonly perAddress: FailureWindow;
  private readonly adminHash: string;
  readonly idleMs: number;
  readonly maxAgeMs: number;

  constructor(
    private readonly storage: Storage,
    private readonly config: ServerConfigForApp,
    private readonly now: () => number,
  ) {
    this.adminHash = hashSecret(config.adminToken);
    this.hasher = new PasswordHasher(2, limit(config, 'login_queue'));
    const windowMs = limit(config, 'login_throttle_window') * 1000;
    this.perUser = new FailureWindow(limit(config, 'login_failures_per_user'), windowMs);
    this.perAddress = new FailureWindow(limit(config, 'login_failures_per_address'), windowMs);
    this.idleMs = limit(config, 'session_idle_timeout') * 1000;
    this.maxAgeMs = limit(config, 'session_max_age') * 1000;
  }

  /** The key an address is throttled by (an IPv6 client holds a whole /64). */
  static addressKey(req: FastifyRequest): string {
    return normalizeIP(req.ip ?? '', 64);
  }

  /**
   * Checks a name and password. Throttled callers are refused before any hashing; an unknown name
   * costs the same hash as a wrong password, and both get the same answer.
   */
  async login(req: FastifyRequest, name: string, password: string): Promise<LoginOutcome> {
    const t = this.now();
    const addr = OperatorAuth.addressKey(req);
    const wait = Math.max(this.perUser.retryAfter(name, t), this.perAddress.retryAfter(addr, t));
    if (wait > 0) throw HttpError.of(ErrorCodes.rateLimited, `cannot log in: too many failed logins, retry in ${wait} s`, { retryAfter: wait });
    const busy = this.inFlight.get(addr) ?? 0;
    if (busy >= LOGINS_IN_FLIGHT_PER_ADDRESS) {
      throw HttpError.of(ErrorCodes.rateLimited, `cannot log in: more than ${LOGINS_IN_FLIGHT_PER_ADDRESS} logins from this address at once, retry shortly`, { retryAfter: 1 });
    }
    const user = this.storage.auth.getUser(name);
    this.inFlight.set(addr, busy + 1);
    let ok: boolean;
    try {
      ok = await this.hasher.verify(password, user?.passwordHash ?? null);
    } finally {
      const left = (this.inFlight.get(addr) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(addr);
      else this.inFlight.set(addr, left);
    }
    if (!ok || !user) {
      this.perUser.fail(name, this.now());
      this.perAddress.fail(addr, this.now());
      throw HttpError.of(ErrorCodes.unauthorized, 'cannot log in: wrong user name or password');
    }
    this.perUser.clear(name);
    // A session presented at login is ended: the new one never reuses an id the browser had (fixation).
    const old = sessionCookie(req.headers.cookie);
    if (old !== null) this.storage.auth.deleteSession(hashSecret(old));
    const id = newSecret();
    const now = this.now();
    const session: SessionRecord = { idHash: hashSecret(id), userName: user.name, csrf: newSecret(), createdAt: now, lastUsed: now, expiresAt: now + this.maxAgeMs, ip: req.ip ?? null };
    this.storage.auth.createSession(session, limit(this.config, 'sessions_per_user'));
    if (this.hasher.outdated(user.passwordHash)) {
      const hash = await this.hasher.hash(password);
      this.storage.auth.setPassword(user.name, hash, now, session.idHash);
    }
    return { user, session, id };
  }

  /** Whether a session holds at `now`: neither idle for session_idle_timeout nor past session_max_age. */
  live(s: SessionRecord, now = this.now()): boolean {
    return s.expiresAt > now && s.lastUsed + this.idleMs > now;
  }

  /** The live session of the request's cookie, or null (an expired one is deleted). */
  session(req: FastifyRequest): { session: SessionRecord; user: UserRecord } | null {
    const id = sessionCookie(req.headers.cookie);
    if (id === null) return null;
    const found = this.storage.auth.getSession(hashSecret(id));
    if (!found) return null;
    const now = this.now();
    if (!this.live(found.session, now)) {
      this.storage.auth.deleteSession(found.session.idHash);
      return null;
    }
    if (now - found.session.lastUsed >= TOUCH_EVERY_MS) this.storage.auth.touchSession(found.session.idHash, now);
    return found;
  }

  /**
   * The caller of an operator route: the admin token when an Authorization header is given (and
   * only then), else the session cookie. Cookie requests that change something are CSRF-checked.
   */
  authenticate(req: FastifyRequest): Operator {
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer (\S{1,512})$/.exec(h);
      if (!m || !secretMatches(m[1]!, this.adminHash)) throw HttpError.of(ErrorCodes.unauthorized, 'cannot authorize operator: missing or wrong admin token');
      return ADMIN_TOKEN_OPERATOR;
    }
    const found = this.session(req);
    if (!found) {
      const why = sessionCookie(req.headers.cookie) === null ? 'missing or wrong admin token' : 'the session ended, log in again';
      throw HttpError.of(ErrorCodes.unauthorized, `cannot authorize operator: ${why}`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') checkCsrf(req, found.session.csrf);
    const { user, session } = found;
    return { kind: 'user', name: user.name, role: user.role, selector: user.role === 'operator' ? user.selector : null, sessionId: session.idHash };
  }

  setCookie(reply: FastifyReply, id: string): void {
    void reply.header('set-cookie', `${SESSION_COOKIE}=${id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=${this.maxAgeMs / 1000}`);
  }

  clearCookie(reply: FastifyReply): void {
    void reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0`);
  }

  /** Deletes ended sessions (called on a timer). */
  prune(): number {
    const now = this.now();
    return this.storage.auth.pruneSessions(now, now - this.idleMs);
  }
}

/** Refuses a request whose Origin, when it has one, is not this server's own. */
export function checkOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  if (origin !== `https://${req.headers.host ?? ''}`) throw HttpError.of(ErrorCodes.permissionDenied, `cannot accept request: origin ${JSON.stringify(origin.slice(0, 100))} is not this server`);
}

/** A cookie request that changes something: the session's CSRF token in X-CSRF-Token, and its own origin. */
function checkCsrf(req: FastifyRequest, csrf: string): void {
  checkOrigin(req);
  const h = req.headers['x-csrf-token'];
  if (typeof h !== 'string' || h.length > 512 || !secretMatches(h, hashSecret(csrf))) {
    throw HttpError.of(ErrorCodes.permissionDenied, 'cannot accept request: missing or wrong X-CSRF-Token (log in again to get one)');
  }
}

/** Why each request failed, for the audit entry of a refused change. */
const failures = new WeakMap<FastifyRequest, string>();

/** Route options declaring the role a route needs (checked before its body is read). */
export const needs = (role: Role) => ({ config: { role } });

/**
 * Installs on a route plugin: authentication (req.operator), the role a route declares with
 * `needs(role)` (without: a change needs the operator role, reading the viewer role), and
 * an audit entry for every change the handler did not record itself (refused ones included).
 */
export function installOperatorAuth(api: FastifyInstance, ctx: ServerContext): void {
  api.addHook('onRequest', async (req) => {
    req.operator = ctx.auth.authenticate(req);
    // Checked before the body is validated: a caller without the role learns nothing of the schema.
    const declared = (req.routeOptions.config as { role?: Role } | undefined)?.role;
    requireRole(req, declared ?? (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'operator'));
  });
  api.addHook('onError', async (req, _reply, err) => {
    failures.set(req, err.message);
  });
  api.addHook('onResponse', async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD' || audited.has(req) || (req.operator as Operator | undefined) === undefined) return;
    const params = (req.params ?? {}) as Record<string, unknown>;
    const body = req.body as Record<string, unknown> | undefined;
    const agents = [params.id, body?.agent_id].filter((x): x is string => typeof x === 'string');
    ctx.audit(req, {
      action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`,
      agents,
      params: { ...params, ...(body && typeof body === 'object' ? body : {}) },
      result: reply.statusCode < 400 ? 'ok' : (failures.get(req) ?? `HTTP ${reply.statusCode}`),
    });
  });
}
