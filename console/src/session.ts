/** Who is logged in, for every page: role-aware pages hide what the role may not do. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role, SessionUser } from '../../src/protocol/operator-api.ts';

export const SessionContext = createContext<SessionUser | null>(null);

const ORDER: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function useUser(): SessionUser {
  const u = useContext(SessionContext);
  if (u === null) throw new Error('no session');
  return u;
}

/** Whether the logged-in user has at least `role` (viewer < operator < admin). */
export function useCan(role: Role): boolean {
  const u = useContext(SessionContext);
  return u !== null && ORDER[u.role] >= ORDER[role];
}
