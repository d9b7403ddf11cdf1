/**
 * Which tuxsec-cli commands tuxsec-shell runs: those the server sends (INTEROP section 4) and
 * `ping`; not `doctor`, which reads agent.yaml, contacts the server with the agent's client
 * certificate and prints local paths. `execute` must also pass agent.yaml's policy, as a job
 * through the agent's executor must.
 */
import { parseArgs } from 'node:util';
import { CLI_OPTIONS } from '../cli/options.ts';
import { readConfigText } from '../common/config-file.ts';
import { DEFAULT_CONFIG_PATH, parseConfigText } from '../agent/config.ts';
import { policyAllows, policyRefusal } from '../agent/policy.ts';
import { RefusedCommand } from './words.ts';

export const SSH_COMMANDS: readonly string[] = ['system-info', 'list-modules', 'installed-modules', 'module-info', 'execute', 'ping'];

/**
 * Throws RefusedCommand for a command not run over SSH; returns the policy's refusal of an
 * `execute` (printed as the CLI prints a failure), or null. A missing agent.yaml has no policy;
 * one that cannot be read or is invalid refuses every execute.
 */
export function checkCliCommand(args: string[], agentConfig = DEFAULT_CONFIG_PATH): string | null {
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args, options: CLI_OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    throw new RefusedCommand(`cannot run command: ${(e as Error).message.slice(0, 200)}`);
  }
  const [cmd, module, action] = positionals;
  if (cmd === undefined || !SSH_COMMANDS.includes(cmd)) {
    const shown = cmd === undefined ? 'tuxsec-cli without a command' : `tuxsec-cli ${JSON.stringify(cmd.slice(0, 80))}`;
    throw new RefusedCommand(`cannot run ${shown} over SSH: only ${SSH_COMMANDS.join(', ')}`);
  }
  if (cmd !== 'execute' || module === undefined || action === undefined) return null;
  const text = readConfigText(agentConfig, { optional: true });
  if (text === null) return null;
  return policyAllows(parseConfigText(text, agentConfig).policy, module, action) ? null : policyRefusal(module, action);
}
