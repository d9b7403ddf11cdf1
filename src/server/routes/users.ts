/**
 * Operators' accounts (admin only): list, add (password given or generated and shown once),
 * remove, set password, revoke sessions. Removing a user, changing its password and revoking end
 * its sessions at once.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { iso, type ServerContext } from '../context.ts';
import { installOperatorAuth, needs } from '../operator-auth.ts';
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, MAX_LABELS, type LabelSelector, type Role } from '../operators.ts';
import { generatePassword, PASSWORD_MAX, passwordProblem } from '../passwords.ts';
import type { UserRecord } from '../storage/auth-store.ts';

/** A user name: like a Unix login name. */
export const USER_NAME = /^[a-z_][a-z0-9_.-]{0,63}$/;
const NAME_RULE = 'a name is 1 to 64 characters: lowercase letters, digits, "_", "." and "-", starting with a letter or "_"';
/** Names the audit log uses for callers that are not users. */
const RESERVED = new Set(['admin-token', 'anonymous']);
const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);

const Selector = Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 128 }), { maxProperties: MAX_LABELS });
const UserAddBody = Type.Object(
  {
    name: Type.String({ maxLength: 256 }),
    role: Type.Union([Type.Literal('admin'), Type.Literal('operator'), Type.Literal('viewer')]),
    selector: Type.Optional(Type.Union([Type.Null(), Selector])),
    password: Type.Optional(Type.String({ maxLength: PASSWORD_MAX + 1 })),
  },
  { additionalProperties: false },
);
const PasswordBody = Type.Object({ password: Type.Optional(Type.String({ maxLength: PASSWORD_MAX + 1 })) }, { additionalProperties: false });
const NameParams = Type.Object({ name: Type.String({ maxLength: 256 }) });
const UserFull = Type.Object(
  {
    name: Type.String(),
    role: Type.String(),
    selector: Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())]),
    created_at: Type.String(),
    updated_at: Type.String(),
    sessions: Type.Integer(),
  },
  { additionalProperties: false },
);
const UserReply = Type.Object({ success: Type.Literal(true), user: UserFull, password: Type.Optional(Type.String()) });

export interface UserRoutesOptions {
  ctx: ServerContext;
}

function checkName(name: string, what: string): void {
  if (!USER_NAME.test(name)) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: invalid user name ${JSON.stringify(name.slice(0, 100))}: ${NAME_RULE}`);
  if (RESERVED.has(name)) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: the name "${name}" is reserved`);
}

function checkSelector(role: Role, selector: LabelSelector | null | undefined, what: string): LabelSelector | null {
  if (selector === undefined || selector === null) return null;
  if (role !== 'operator') throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: a label selector limits an operator; role ${role} takes none`);
  for (const [k, v] of Object.entries(selector)) {
    if (!LABEL_KEY.test(k)) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: invalid label key ${JSON.stringify(k)}`);
    if (!LABEL_VALUE.test(v)) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: invalid value ${JSON.stringify(v)} of label "${k}"`);
  }
  return Object.keys(selector).length === 0 ? null : { ...selector };
}

/** The password given, checked, or a generated one (`generated` true). */
function passwordOf(given: string | undefined, what: string): { password: string; generated: boolean } {
  if (given === undefined) return { password: generatePassword(), generated: true };
  const why = passwordProblem(given);
  if (why !== null) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: the password is ${why.startsWith('contains') ? 'invalid: it ' : ''}${why}`);
  return { password: given, generated: false };
}

export const userRoutes: FastifyPluginAsyncTypebox<UserRoutesOptions> = async (api, { ctx }) => {
  const { storage, auth } = ctx;
  installOperatorAuth(api, ctx);
  const view = (u: UserRecord) => ({
    name: u.name,
    role: u.role,
    selector: u.selector,
    created_at: iso(u.createdAt)!,
    updated_at: iso(u.updatedAt)!,
    sessions: storage.auth.countSessions(u.name),
  });

  api.get('/users', { ...needs('admin'), schema: { response: { 200: Type.Object({ success: Type.Literal(true), users: Type.Array(UserFull) }) } } }, async () => {
    return { success: true as const, users: storage.auth.listUsers().map(view) };
  });

  api.post('/users', { ...needs('admin'), schema: { body: UserAddBody, response: { 201: UserReply } } }, async (req, reply) => {
    const b = req.body;
    const what = `add user ${JSON.stringify(b.name.slice(0, 100))}`;
    checkName(b.name, what);
    const selector = checkSelector(b.role, b.selector, what);
    const { password, generated } = passwordOf(b.password, what);
    const t = ctx.now();
    const user: UserRecord = { name: b.name, role: b.role, selector, passwordHash: await auth.hasher.hash(password), createdAt: t, updatedAt: t };
    if (!(await ctx.group.run(() => storage.auth.createUser(user)))) throw HttpError.of(ErrorCodes.conflict, `cannot ${what}: a user of that name exists`);
    ctx.audit(req, { action: 'user.add', agents: [], params: { name: b.name, role: b.role, selector }, result: 'ok' });
    req.log.info({ user: user.name, role: user.role }, 'user added');
    return reply.code(201).send({ success: true, user: view(user), ...(generated ? { password } : {}) });
  });

  api.delete('/users/:name', { ...needs('admin'), schema: { params: NameParams } }, async (req) => {
    const { name } = req.params;
    if (!(await ctx.group.run(() => storage.auth.deleteUser(name)))) throw HttpError.of(ErrorCodes.notFound, `cannot remove user ${JSON.stringify(name.slice(0, 100))}: no such user`);
    ctx.events.closeEndedSessions();
    ctx.audit(req, { action: 'user.remove', agents: [], params: { name }, result: 'ok' });
    req.log.info({ user: name }, 'user removed');
    return { success: true };
  });

  api.post('/users/:name/password', { ...needs('admin'), schema: { params: NameParams, body: PasswordBody, response: { 200: UserReply } } }, async (req) => {
    const { name } = req.params;
    const what = `set password of user ${JSON.stringify(name.slice(0, 100))}`;
    const { password, generated } = passwordOf(req.body.password, what);
    if (!storage.auth.getUser(name)) throw HttpError.of(ErrorCodes.notFound, `cannot ${what}: no such user`);
    const hash = await auth.hasher.hash(password);
    if (!(await ctx.group.run(() => storage.auth.setPassword(name, hash, ctx.now())))) throw HttpError.of(ErrorCodes.notFound, `cannot ${what}: no such user`);
    ctx.events.closeEndedSessions();
    ctx.audit(req, { action: 'user.passwd', agents: [], params: { name }, result: 'ok' });
    req.log.info({ user: name }, 'user password set');
    return { success: true as const, user: view(storage.auth.getUser(name)!), ...(generated ? { password } : {}) };
  });

  api.post('/users/:name/revoke', { ...needs('admin'), schema: { params: NameParams } }, async (req) => {
    const { name } = req.params;
    if (!storage.auth.getUser(name)) throw HttpError.of(ErrorCodes.notFound, `cannot revoke sessions of user ${JSON.stringify(name.slice(0, 100))}: no such user`);
    const ended = await ctx.group.run(() => storage.auth.deleteSessionsOf(name));
    ctx.events.closeEndedSessions();
    ctx.audit(req, { action: 'user.revoke', agents: [], params: { name }, result: 'ok' });
    return { success: true, ended };
  });
};
