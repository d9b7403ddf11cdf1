/**
 * Login sessions of the console: `POST /api/v1/session` logs in (name and password; sets the
 * session cookie), `GET` says who is logged in (with the CSRF token), `DELETE` logs out.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { iso, limit, type ServerContext } from '../context.ts';
import { checkOrigin, userView } from '../operator-auth.ts';
import { PASSWORD_MAX } from '../passwords.ts';

/** A login body is small: a bigger one is refused before it is read in full. */
export const LOGIN_BODY_LIMIT = 4096;
/** How often ended sessions are deleted. */
const PRUNE_MS = 60_000;

export const LoginBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX }) },
  { additionalProperties: false },
);

const Selector = Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())]);
export const UserView = Type.Object({ name: Type.String(), role: Type.String(), selector: Selector }, { additionalProperties: false });
const SessionReply = Type.Object({ success: Type.Literal(true), user: UserView, csrf: Type.String(), expires_at: Type.String() });

export interface SessionRoutesOptions {
  ctx: ServerContext;
}

export const sessionRoutes: FastifyPluginAsyncTypebox<SessionRoutesOptions> = async (api, { ctx }) => {
  const { auth } = ctx;
  let timer: NodeJS.Timeout | undefined;
  api.addHook('onReady', async () => {
    const sweep = (): void => {
      try {
        auth.prune();
        ctx.storage.auth.pruneAudit(limit(ctx.config, 'audit_max_entries'));
      } catch (err) {
        api.log.error({ err }, 'cannot delete ended sessions');
      }
    };
    timer = setInterval(sweep, PRUNE_MS).unref();
  });
  api.addHook('onClose', async () => clearInterval(timer));

  api.post('/session', { bodyLimit: LOGIN_BODY_LIMIT, schema: { body: LoginBody, response: { 200: SessionReply } } }, async (req, reply) => {
    checkOrigin(req);
    const { name, password } = req.body;
    let out;
    try {
      out = await auth.login(req, name, password);
    } catch (e) {
      if (e instanceof HttpError && e.code === ErrorCodes.unauthorized) {
        ctx.audit(req, { action: 'session.login', agents: [], params: { name }, result: e.message });
      }
      throw e;
    }
    // A session pushed out by this one (sessions_per_user) or presented at login ends its streams too.
    ctx.events.closeEndedSessions();
    req.operator = { kind: 'user', name: out.user.name, role: out.user.role, selector: out.user.selector, sessionId: out.session.idHash };
    ctx.audit(req, { action: 'session.login', agents: [], params: { name }, result: 'ok' });
    req.log.info({ user: out.user.name }, 'operator logged in');
    auth.setCookie(reply, out.id);
    return { success: true as const, user: userView(out.user), csrf: out.session.csrf, expires_at: iso(out.session.expiresAt)! };
  });

  api.get('/session', { schema: { response: { 200: SessionReply } } }, async (req) => {
    const found = auth.session(req);
    if (!found) throw HttpError.of(ErrorCodes.unauthorized, 'cannot show session: not logged in');
    return { success: true as const, user: userView(found.user), csrf: found.session.csrf, expires_at: iso(found.session.expiresAt)! };
  });

  api.delete('/session', async (req, reply) => {
    req.operator = auth.authenticate(req);
    if (req.operator.sessionId === undefined) throw HttpError.of(ErrorCodes.invalidRequest, 'cannot log out: the admin token has no session');
    ctx.storage.auth.deleteSession(req.operator.sessionId!);
    ctx.events.closeEndedSessions();
    ctx.audit(req, { action: 'session.logout', agents: [], params: {}, result: 'ok' });
    auth.clearCookie(reply);
    return { success: true };
  });
};
