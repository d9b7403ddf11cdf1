/**
 * Who calls the operator API and what they may do. Every request under /api/v1 carries an Operator
 * (req.operator): the admin token is an admin; a console user has a role, and an operator's role
 * may be limited to the hosts whose labels match a selector. Routes say what they need with
 * requireRole, and check each host they touch with requireAgent (a host out of reach is "not
 * found": a limited operator never learns that it exists).
 */
import type { FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** Labels an agent must carry, every pair; `{}` matches every agent. */
export type LabelSelector = Record<string, string>;

export interface Operator {
  kind: 'token' | 'user';
  name: string;
  role: Role;
  /** Operators only: the hosts this operator may reach; null: all of them. */
  selector: LabelSelector | null;
  /** The console session the request came with (kind user). */
  sessionId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    operator: Operator;
  }
}

/** The admin token: automation, and the tuxsec-server command line. */
export const ADMIN_TOKEN_OPERATOR: Readonly<Operator> = Object.freeze({ kind: 'token', name: 'admin-token', role: 'admin', selector: null });

/** Label keys: a letter or digit, then letters, digits and . _ / - (at most 63). */
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
/** Label values: possibly empty, letters, digits and . _ : @ / - (at most 128). */
export const LABEL_VALUE_PATTERN = '^[A-Za-z0-9._:@/-]{0,128}$';
/** Most labels one agent (or token, or selector) carries. */
export const MAX_LABELS = 32;

const KEY_RE = new RegExp(LABEL_KEY_PATTERN);
const VALUE_RE = new RegExp(LABEL_VALUE_PATTERN);

/** Whether `labels` carries every pair of `selector`. */
export function matchesSelector(labels: Readonly<Record<string, string>>, selector: Readonly<LabelSelector>): boolean {
  for (const [k, v] of Object.entries(selector)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  }
  return true;
}

/** Whether the operator may see and act on this agent. */
export function canReach(op: Operator, agent: { labels: Readonly<Record<string, string>> }): boolean {
  return op.selector === null || matchesSelector(agent.labels, op.selector);
}

const rank = (r: Role): number => ROLES.indexOf(r);

/** Refuses (403) a request whose operator's role is below `role`. */
export function requireRole(req: FastifyRequest, role: Role): void {
  const op = req.operator;
  if (rank(op.role) < rank(role)) {
    throw HttpError.of(ErrorCodes.permissionDenied, `cannot ${req.method} ${req.routeOptions.url ?? req.url}: ${op.kind} "${op.name}" has role ${op.role}, this needs ${role}`);
  }
}

/**
 * Throws 404 (as for an unknown id) when the operator cannot reach the agent, or there is none; else
 * gives it back. `what` is the message's start, e.g. `cannot queue job for agent "ID"`.
 */
export function requireAgent<A extends { labels: Readonly<Record<string, string>> }>(req: FastifyRequest, agent: A | undefined, what: string): A {
  if (agent === undefined || !canReach(req.operator, agent)) throw HttpError.of(ErrorCodes.notFound, `${what}: no such agent`);
  return agent;
}

/**
 * Parses `KEY=VALUE` words (the command line's --label and `agents label`), each checked; a word
 * `KEY-` (when `allowRemove`) asks to remove the key. Throws Error naming the bad word.
 */
export function parseLabelWords(words: readonly string[], allowRemove = false): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const w of words) {
    if (allowRemove && w.endsWith('-') && !w.includes('=')) {
      const k = w.slice(0, -1);
      if (!KEY_RE.test(k)) throw new Error(`invalid label key "${k}": expected ${LABEL_KEY_PATTERN}`);
      remove.push(k);
      continue;
    }
    const i = w.indexOf('=');
    if (i <= 0) throw new Error(`invalid label "${w}": expected KEY=VALUE${allowRemove ? ' or KEY- (remove)' : ''}`);
    const k = w.slice(0, i);
    const v = w.slice(i + 1);
    if (!KEY_RE.test(k)) throw new Error(`invalid label key "${k}": expected ${LABEL_KEY_PATTERN}`);
    if (!VALUE_RE.test(v)) throw new Error(`invalid value "${v}" for label "${k}": expected ${LABEL_VALUE_PATTERN}`);
    set[k] = v;
  }
  if (Object.keys(set).length > MAX_LABELS) throw new Error(`too many labels: at most ${MAX_LABELS}`);
  return { set, remove };
}
