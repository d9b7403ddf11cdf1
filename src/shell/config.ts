/** /etc/tuxsec/shell.yaml: the settings of tuxsec-shell (SSH mode), read by the one config loader. */
import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_CONFIG_PATH } from '../agent/config.ts';
import { loadConfigFile } from '../common/config-file.ts';

export const DEFAULT_SHELL_CONFIG = '/etc/tuxsec/shell.yaml';

export const ShellConfigSchema = Type.Object(
  {
    read_only: Type.Boolean({ default: false, description: 'run only actions of access class read' }),
    socket: Type.Union([Type.String({ minLength: 1, maxLength: 107, pattern: '^/' }), Type.Null()], { default: null, description: 'the rootd socket' }),
    agent_config: Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^/',
      default: DEFAULT_CONFIG_PATH,
      description: "the agent's config, whose state_dir (journal), outbox bounds and policy the job form uses",
    }),
  },
  { additionalProperties: false },
);
export type ShellConfig = Static<typeof ShellConfigSchema>;

/** The settings; a missing file means the defaults. */
export function loadShellConfig(file = DEFAULT_SHELL_CONFIG): ShellConfig {
  return loadConfigFile(ShellConfigSchema, file, { optional: true });
}
