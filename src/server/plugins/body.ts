/**
 * Request bodies: JSON only, bounded in size and depth, without prototype-poisoning keys. A body
 * read before its sender is known may only be small (see agent-auth.ts).
 */
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { findPoisonKey, nestingDepth } from '../../protocol/json.ts';

export const BODY_LIMIT = 1024 * 1024;
/**
 * Largest body read before the sender is known: a registration (os_info is at most 64 KiB) or an
 * agent call without X-API-Key, whose key is in the body (the original Python agent sent both).
 */
export const UNAUTHENTICATED_BODY_LIMIT = 128 * 1024;
const MAX_JSON_DEPTH = 64;

/** Passes a body through while it stays within `max` bytes; errors with 413 past it. */
export function capStream(payload: Readable, max: number, declared: number): Readable {
  const tooLarge = (): HttpError => HttpError.of(ErrorCodes.messageTooLarge, `cannot accept request: body larger than ${max} bytes without X-API-Key`);
  if (declared > max) throw tooLarge();
  let n = 0;
  const capped = new Transform({
    transform(chunk: Buffer, _enc, next) {
      n += chunk.length;
      next(n > max ? tooLarge() : null, n > max ? undefined : chunk);
    },
  });
  payload.on('error', (err) => capped.destroy(err));
  return payload.pipe(capped);
}

function parseJsonBody(_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void): void {
  if (body.length === 0) return done(HttpError.of(ErrorCodes.invalidJson, 'cannot read request: empty body'));
  if (nestingDepth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return done(HttpError.of(ErrorCodes.invalidRequest, `cannot read request: JSON nested deeper than ${MAX_JSON_DEPTH}`));
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return done(HttpError.of(ErrorCodes.invalidJson, 'cannot read request: invalid JSON'));
  }
  const poison = findPoisonKey(value);
  if (poison !== null) return done(HttpError.of(ErrorCodes.invalidRequest, `cannot read request: forbidden key "${poison}"`));
  done(null, value);
}

/** Replaces Fastify's parsers with the one JSON parser (any other content type is refused, 415). */
export function installJsonParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, parseJsonBody);
}
