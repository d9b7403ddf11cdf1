/**
 * tuxsec-cli's options, for its own parser and for tuxsec-shell, which must find the same
 * command and arguments in a command line as the CLI will.
 */
export const CLI_OPTIONS = {
  socket: { type: 'string', short: 's' },
  param: { type: 'string', short: 'p', multiple: true },
  'json-params': { type: 'string', short: 'j' },
  json: { type: 'boolean' },
  'rootd-config': { type: 'string' },
  'agent-config': { type: 'string' },
  'read-only': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;
