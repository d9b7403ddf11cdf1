/**
 * What the unit tier drives rootd's request path with, in-process and without root: a fake
 * peer-credential source (the kernel's SO_PEERCRED needs a real peer of another uid), module
 * state set without touching the host, and a small module with one action of each access class.
 */
import type net from 'node:net';
import { Type } from '@sinclair/typebox';
import type { AuditLog, AuditRecord } from '../../src/rootd/audit.ts';
import { makeAccessPolicy, type AccessRules } from '../../src/rootd/access.ts';
import { createDispatcher, type Dispatcher, type DispatcherLimits } from '../../src/rootd/dispatcher.ts';
import { RateLimiter } from '../../src/common/rate-limit.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import { defineAction, type ActionContext, type PeerIdentity } from '../../src/sdk/action.ts';
import { ActionModule, type InitResult } from '../../src/sdk/base-module.ts';
import { Params } from '../../src/sdk/schema.ts';

export const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Stands in for a module's initialize: available at once, nothing on the host touched. */
export const ready = async (): Promise<InitResult> => [true, null];

export function peerOf(uid: number): PeerIdentity {
  return { uid, gid: uid, pid: 1000 + uid };
}

export function ctxFor(uid: number, signal = new AbortController().signal): ActionContext {
  return { peer: peerOf(uid), signal, log: quiet, requestId: 't', progress: () => {} };
}

/**
 * A peer-credential source for createRootdServer: the next connection is taken to come from
 * `next.uid` (null: credentials that cannot be read).
 */
export function fakePeerCred(): { next: { uid: number } | null; source: (sock: net.Socket) => { uid: number; gid: number; pid: number } | null } {
  const state: { next: { uid: number } | null } = { next: { uid: 0 } };
  return Object.assign(state, { source: () => (state.next ? peerOf(state.next.uid) : null) });
}

/** A module with one action of each access class, a slow one and one that throws. */
export class TestModule extends ActionModule {
  calls: string[] = [];
  get name() {
    return 'testmod';
  }
  get version() {
    return '1.0.0';
  }
  get description() {
    return 'test module';
  }
  protected defineActions() {
    return [
      defineAction({
        name: 'look',
        description: 'read',
        access: 'read',
        params: Params({ n: Type.Optional(Type.Integer({ description: 'a number' })) }),
        handler: (p) => (this.calls.push('look'), { n: p.n ?? 0 }),
      }),
      defineAction({ name: 'change', description: 'write', access: 'write', params: Params({}), handler: () => (this.calls.push('change'), {}) }),
      defineAction({ name: 'panic', description: 'dangerous', access: 'dangerous', params: Params({}), handler: () => (this.calls.push('panic'), {}) }),
      defineAction({
        name: 'wait',
        description: 'waits until aborted',
        access: 'read',
        params: Params({}),
        handler: (_p, ctx) =>
          new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true })),
      }),
      defineAction({
        name: 'boom',
        description: 'throws',
        access: 'read',
        params: Params({}),
        handler: () => {
          throw new Error('kaput');
        },
      }),
    ];
  }
}

export interface Harness {
  dispatcher: Dispatcher;
  module: TestModule;
  audit: AuditRecord[];
  limiter: RateLimiter;
  stop: AbortController;
  /** Sends one request object (or a raw line) as `uid`; gives the parsed answer. */
  ask(req: unknown, uid?: number): Promise<Record<string, unknown>>;
}

/** A dispatcher over a registry holding TestModule (available), with everything in memory. */
export async function harness(
  o: { rules?: AccessRules; limits?: Partial<DispatcherLimits>; rate?: number } = {},
): Promise<Harness> {
  const rules = o.rules ?? { allowedUids: new Set([1000]), readOnlyUids: new Set([1001]) };
  const registry = new ModuleRegistry(quiet, makeAccessPolicy(() => rules));
  const module = new TestModule();
  registry.register(module);
  await registry.initializeAll(() => ({ settings: {}, log: quiet }), ready);
  const records: AuditRecord[] = [];
  const audit: AuditLog = { write: (r) => void records.push(r), reopen() {}, async flush() {} };
  const limiter = new RateLimiter(o.rate ?? 1e9, o.rate ?? 1e9);
  const stop = new AbortController();
  const dispatcher = createDispatcher({
    registry,
    log: quiet,
    audit,
    limiter,
    stopping: stop.signal,
    limits: () => ({ maxDepth: 16, requestTimeoutMs: 5000, ...o.limits }),
  });
  return {
    dispatcher,
    module,
    audit: records,
    limiter,
    stop,
    async ask(req, uid = 0) {
      const line = typeof req === 'string' ? req : JSON.stringify(req);
      return JSON.parse(await dispatcher.handle(Buffer.from(line), peerOf(uid))) as Record<string, unknown>;
    },
  };
}

/**
 * tuxsec-server in-process (fastify's inject, SQLite in memory, no socket) with an admin token;
 * `call` sends one request and gives its status and JSON body. Loaded on demand: most unit tests
 * never need the server.
 */
export async function inProcessServer() {
  const { buildApp } = await import('../../src/server/app.ts');
  const { openSqliteStorage } = await import('../../src/server/storage/sqlite.ts');
  const admin = { authorization: `Bearer ${'a'.repeat(32)}` };
  const { app } = buildApp({
    config: { adminToken: 'a'.repeat(32), require_enrollment_token: false, long_poll_max: 30, sync_interval: 30, job_default_ttl: 3600, redeliver_after: 15 },
    storage: openSqliteStorage(':memory:'),
    logger: (await import('pino')).default({ level: 'silent' }),
  });
  const call = async (method: 'GET' | 'POST', url: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await app.inject({ method, url, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, payload: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };
  return { app, admin, call };
}
