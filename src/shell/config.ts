/** /etc/tuxsec/shell.yaml: the settings of tuxsec-shell (SSH mode), read by the one config loader. */
import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_CONFIG_PATH } from '../agent/config.ts';
import { loadConfigFile } from '../common/config-file.ts';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSIONS_DIR } from './sessions.ts';

export const DEFAULT_SHELL_CONFIG = '/etc/tuxsec/shell.yaml';

const PathStr = (d: string, description: string) => Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', default: d, description });

export const ShellConfigSchema = Type.Object(
  {
    read_only: Type.Boolean({ default: false, description: 'run only actions of access class read' }),
    socket: Type.Union([Type.String({ minLength: 1, maxLength: 107, pattern: '^/' }), Type.Null()], { default: null, description: 'the rootd socket' }),
    agent_config: PathStr(DEFAULT_CONFIG_PATH, "the agent's config: its policy applies to tuxsec-cli execute; the job form uses its state_dir (journal), outbox bounds and policy"),
    max_sessions: Type.Integer({ minimum: 1, maximum: 1000, default: DEFAULT_MAX_SESSIONS, description: 'SSH-mode sessions at once' }),
    sessions_dir: PathStr(DEFAULT_SESSIONS_DIR, 'where running sessions are counted'),
  },
  { additionalProperties: false },
);
export type ShellConfig = Static<typeof ShellConfigSchema>;

/** The settings; a missing file means the defaults. */
export function loadShellConfig(file = DEFAULT_SHELL_CONFIG): ShellConfig {
  return loadConfigFile(ShellConfigSchema, file, { optional: true });
}
