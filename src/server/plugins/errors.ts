/**
 * Error mapping: every refusal tuxsec-server makes, from a bad TCP stream to a failed handler, is
 * answered as `{success: false, error, code}` with the code's status from the error registry.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError, httpStatus, type ErrorCode } from '../../protocol/errors.ts';
import { BODY_LIMIT } from './body.ts';

/** A client value in a message: JSON-quoted and cut short. */
export function quote(v: string): string {
  return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}...` : v);
}

/** Errors Node raises on a connection before Fastify sees a request (timeouts, bad HTTP). */
export function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let e = HttpError.of(ErrorCodes.invalidRequest, 'cannot read request: malformed HTTP');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') e = HttpError.of(ErrorCodes.timeout, 'cannot read request: not received in time');
  else if (err.code === 'HPE_HEADER_OVERFLOW') e = HttpError.of(ErrorCodes.messageTooLarge, 'cannot read request: headers too large', { status: 431 });
  const text = JSON.stringify({ success: false, error: e.message, code: e.code });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${text}`);
  }
  socket.destroy();
}

/** Errors raised before routing (a URL that does not decode) get the project's shape too. */
export function frameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const badUrl = err.code === 'FST_ERR_BAD_URL';
  const error = badUrl ? `cannot read request: malformed URL ${quote(req.url)}` : `cannot route request: ${err.message}`;
  void reply.code(httpStatus(ErrorCodes.invalidRequest)).send({ success: false, error, code: ErrorCodes.invalidRequest });
}

type RaisedError = Error & { statusCode?: number; validation?: unknown; code?: string };

/** The registry error a thrown error is answered with; null for a fault of ours (logged, 500). */
function toHttpError(err: RaisedError, req: FastifyRequest): HttpError | null {
  if (err instanceof HttpError) return err;
  if (err.validation) return HttpError.of(ErrorCodes.invalidRequest, `cannot accept request: ${err.message}`);
  if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return HttpError.of(ErrorCodes.messageTooLarge, `cannot accept request: body larger than ${req.routeOptions.bodyLimit ?? BODY_LIMIT} bytes`);
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const type = quote(req.headers['content-type'] ?? '');
    return HttpError.of(ErrorCodes.invalidRequest, `cannot read request: content type ${type} is not application/json`, { status: 415 });
  }
  if (err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return HttpError.of(ErrorCodes.invalidRequest, 'cannot read request: body length differs from content-length');
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return HttpError.of(ErrorCodes.invalidRequest, `cannot accept request: ${err.message.slice(0, 200)}`, { status: err.statusCode });
  }
  return null;
}

/** Installs the error and not-found handlers on the root instance (children inherit them). */
export function installErrorMapping(app: FastifyInstance): void {
  app.setErrorHandler((err: RaisedError, req, reply) => {
    let e = toHttpError(err, req);
    if (e === null) {
      req.log.error({ err }, 'request failed');
      e = HttpError.of(ErrorCodes.internal, 'cannot handle request: internal error');
    }
    if (e.retryAfter !== null) void reply.header('retry-after', String(e.retryAfter));
    if (e.status === 503) void reply.header('retry-after', '5');
    // Refused before the whole body came in: close rather than read (and discard) the rest.
    if (!req.raw.complete) void reply.header('connection', 'close');
    const code: ErrorCode = e.code ?? ErrorCodes.internal;
    void reply.code(e.status).send({ success: false, error: e.message, code });
  });
  app.setNotFoundHandler((req, reply) => {
    const what = quote(`${req.method} ${req.url.split('?')[0]}`);
    void reply.code(httpStatus(ErrorCodes.notFound)).send({ success: false, error: `cannot find ${what}`, code: ErrorCodes.notFound });
  });
}
