/**
 * The agent's logger: pino, JSON lines to log_file or stderr. Secrets are redacted by path as a
 * second line of defence; the first is never passing them to the logger at all.
 */
import pino, { type Logger } from 'pino';
import fs from 'node:fs';
import path from 'node:path';

export type { Logger };

/** Paths pino censors wherever they appear in a log object. */
const REDACT_PATHS = [
  'api_key',
  'apiKey',
  'token',
  'enrollment_token',
  '*.api_key',
  '*.apiKey',
  '*.token',
  '*.enrollment_token',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
];

export function createLogger(opts: { level: string; file?: string | null; stream?: NodeJS.WritableStream }): Logger {
  let dest: pino.DestinationStream;
  if (opts.stream) dest = opts.stream as pino.DestinationStream;
  else if (opts.file) {
    fs.mkdirSync(path.dirname(opts.file), { recursive: true, mode: 0o750 });
    dest = pino.destination({ dest: opts.file, sync: true, mode: 0o640 } as Parameters<typeof pino.destination>[0] & object);
  } else dest = pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid, name: 'tuxsec-agent' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  );
}
