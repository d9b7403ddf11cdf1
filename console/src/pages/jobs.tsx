import type { JSX } from 'preact';
export function JobsPage(): JSX.Element {
  return <h1>Jobs</h1>;
}
export function BatchPage(_props: { id: string }): JSX.Element {
  return <h1>Batch</h1>;
}
