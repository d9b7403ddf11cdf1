/** Labels and targets as the console's forms write them. Pure: tested in test/unit/console. */
import type { TargetInput } from '../../src/protocol/operator-api.ts';


/** "K=V, K2=V2" (or one per line) to a label map; an error message naming the bad pair. */
export function parseLabels(text: string): { labels: Record<string, string>; error: string | null } {
  const labels: Record<string, string> = {};
  for (const part of text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== '')) {
    const i = part.indexOf('=');
    if (i <= 0) return { labels, error: `label "${part}" is not KEY=VALUE` };
    labels[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return { labels, error: null };
}

export function formatLabels(labels: Record<string, string> | undefined | null): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** A target form's values to the API's target: a label or a list of agents, one of them. */
export function targetOf(labels: string, agents: string): { target: TargetInput | null; error: string | null } {
  const l = parseLabels(labels);
  if (l.error) return { target: null, error: l.error };
  const ids = [...new Set(agents.split(/[\s,]+/).filter((x) => x !== ''))];
  const hasLabels = Object.keys(l.labels).length > 0;
  if (hasLabels && ids.length > 0) return { target: null, error: 'Give a label or agents, not both' };
  if (hasLabels) return { target: { label: l.labels }, error: null };
  if (ids.length > 0) return { target: { agents: ids }, error: null };
  return { target: null, error: 'Give a label (KEY=VALUE) or one or more agents' };
}
