import type { JSX } from 'preact';
export function UsersPage(): JSX.Element {
  return <h1>Users</h1>;
}
