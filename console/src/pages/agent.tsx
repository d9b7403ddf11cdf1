import type { JSX } from 'preact';
export function AgentPage(_props: { id: string }): JSX.Element {
  return <h1>Agent</h1>;
}
