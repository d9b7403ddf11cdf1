/** The agent's job policy (agent.yaml `policy`), for the executor and for tuxsec-shell alike. */

/** allow/deny lists of `module/action`, `module/*` or `*`; deny wins; no allow list = all allowed. */
export interface Policy {
  allow?: string[];
  deny?: string[];
}

function matches(rule: string, module: string, action: string): boolean {
  if (rule === '*') return true;
  const [m, a] = rule.split('/');
  return m === module && (a === '*' || a === action);
}

/** True when the policy lets `module/action` run. */
export function policyAllows(policy: Policy | undefined, module: string, action: string): boolean {
  if (!policy) return true;
  if (policy.deny?.some((r) => matches(r, module, action))) return false;
  if (policy.allow && !policy.allow.some((r) => matches(r, module, action))) return false;
  return true;
}

/** The one wording of a refusal, in a job's result and on tuxsec-shell's stderr. */
export function policyRefusal(module: string, action: string): string {
  return `cannot run ${module} ${action}: refused by the agent's policy`;
}
