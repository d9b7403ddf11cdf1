/**
 * The log_level of every config: the seed's Python names (DEBUG, INFO, WARNING, ERROR, CRITICAL,
 * in any case, as Python's logging took them) and pino's own, mapped to pino's.
 */
import { Type } from '@sinclair/typebox';

const PINO_LEVELS: Record<string, string> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  critical: 'fatal',
  fatal: 'fatal',
  silent: 'silent',
};

const anyCase = (name: string) => [...name].map((c) => `[${c}${c.toUpperCase()}]`).join('');

/** A log_level config key with its default. */
export const LogLevel = (def: string) =>
  Type.String({
    pattern: `^(?:${Object.keys(PINO_LEVELS).map(anyCase).join('|')})$`,
    default: def,
    description: 'one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or trace, warn, fatal, silent',
  });

/** The pino level for a log_level the schema accepted. */
export function pinoLevel(level: string): string {
  return PINO_LEVELS[level.toLowerCase()] ?? 'info';
}
