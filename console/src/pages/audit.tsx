import type { JSX } from 'preact';
export function AuditPage(): JSX.Element {
  return <h1>Audit</h1>;
}
