/**
 * The web console on tuxsec-server's HTTPS listener: its pages (every path of CONSOLE_PAGES answers
 * index.html, never cached, so a new build is picked up at the next load) and its hashed assets
 * under /assets/ (cached for a year: a new build has new names), each sent precompressed when the
 * browser accepts brotli or gzip. The security headers every response carries are set here too.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { CONSOLE_ASSETS_PREFIX, CONSOLE_PAGES } from '../protocol/console-routes.ts';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';

/**
 * The Content-Security-Policy of every response: the console's own script and style sheet only,
 * nothing inline, nothing from another origin, never framed (no clickjacking of Confirm buttons).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Headers on every response: console pages, the operator API and the agent routes alike. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=63072000',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()',
};

/**
 * Sets SECURITY_HEADERS on every response of `app`, its not-found and error answers included, and
 * `Cache-Control: no-store` on every one outside the hashed assets.
 * Set on the raw response at the start of each request: a route that writes the response itself
 * (a server-sent event stream) carries them too.
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  const entries = Object.entries(SECURITY_HEADERS);
  app.addHook('onRequest', async (req, reply) => {
    for (const [k, v] of entries) reply.raw.setHeader(k, v);
    // API and agent answers hold the fleet, the audit log and sessions: a shared browser's cache or
    // a proxy must not keep them for the next person. Only the hashed assets may be cached.
    if (!req.url.startsWith(CONSOLE_ASSETS_PREFIX)) reply.raw.setHeader('cache-control', 'no-store');
  });
}

/**
 * Where the built console is: dist/console beside the server's bundle (built or installed), or
 * the repository's dist/console when the server runs from its sources (tests with tsx).
 */
export function defaultConsoleDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'console'), path.resolve(here, '../../dist/console')];
  return candidates.find((d) => existsSync(path.join(d, 'index.html'))) ?? candidates[0]!;
}

export interface ConsoleOptions {
  /** The built console (index.html and assets/); defaultConsoleDir() when absent. */
  dir?: string;
}

/** Registers the console's pages and assets. Paths outside CONSOLE_PAGES and /assets/ are left alone. */
export const consoleRoutes: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const dir = opts.dir ?? defaultConsoleDir();
  const built = existsSync(path.join(dir, 'index.html'));
  if (!built) app.log.warn({ dir }, 'web console not served: its build is missing (npm run build)');
  else {
    await app.register(fastifyStatic, {
      root: path.join(dir, 'assets'),
      prefix: CONSOLE_ASSETS_PREFIX,
      preCompressed: true,
      index: false,
      // Hashed names: a changed file is a new name, so a browser may keep each one for good.
      immutable: true,
      maxAge: 365 * 24 * 3600 * 1000,
    });
  }
  for (const pattern of new Set(Object.values(CONSOLE_PAGES))) {
    app.get(pattern, async (_req, reply) => {
      if (!built) throw HttpError.of(ErrorCodes.notFound, `cannot serve the web console: ${path.join(dir, 'index.html')} is missing (build it with npm run build)`);
      void reply.header('cache-control', 'no-store');
      return reply.sendFile('index.html', dir, { cacheControl: false });
    });
  }
};
