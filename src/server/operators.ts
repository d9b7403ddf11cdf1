/**
 * Operators of the operator API and what they may do. (Stand-in with the contract's shapes until
 * main's version lands; main's version wins the merge.)
 */
import type { FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';

export type Role = 'admin' | 'operator' | 'viewer';
export type LabelSelector = Record<string, string>;
export interface Operator { kind: 'token' | 'user'; name: string; role: Role; selector: LabelSelector | null; sessionId?: string }
declare module 'fastify' {
  interface FastifyRequest {
    operator: Operator;
  }
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function requireRole(req: FastifyRequest, role: Role): void {
  if (RANK[req.operator.role] < RANK[role]) throw HttpError.of(ErrorCodes.permissionDenied, `cannot ${req.method} ${req.routeOptions.url}: needs role ${role}, "${req.operator.name}" is ${req.operator.role}`);
}

export function canReach(op: Operator, agent: { id?: string; labels?: Record<string, string> }): boolean {
  if (op.role === 'admin' || op.selector === null) return true;
  return Object.entries(op.selector).every(([k, v]) => agent.labels?.[k] === v);
}

export function requireAgent(req: FastifyRequest, agent: { id: string; labels?: Record<string, string> } | undefined): void {
  if (!agent || !canReach(req.operator, agent)) throw HttpError.of(ErrorCodes.notFound, `cannot find agent "${agent?.id ?? ''}"`);
}

export const ADMIN_TOKEN_OPERATOR: Operator = { kind: 'token', name: 'admin-token', role: 'admin', selector: null };
