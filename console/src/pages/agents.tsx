import type { JSX } from 'preact';
import type { Route } from '../router.tsx';
export function AgentsPage(_props: { route: Route }): JSX.Element {
  return <h1>Agents</h1>;
}
