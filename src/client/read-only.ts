/** SSH mode's read-only option (tuxsec-shell --read-only): only actions of access class `read` run. */
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';
import type { RootdClient } from './rootd-client.ts';

/** Resolves when rootd declares `module action` of access class read; else a `permission-denied` error. */
export async function assertReadAction(client: Pick<RootdClient, 'moduleInfo'>, module: string, action: string): Promise<void> {
  const cap = (await client.moduleInfo(module)).capabilities.find((c) => c.name === action);
  if (cap && cap.access === 'read') return;
  const why = cap ? `its access class is ${JSON.stringify(cap.access ?? 'unknown')}` : 'no such action';
  throw new TuxsecError(ErrorCodes.permissionDenied, `cannot run ${module} ${JSON.stringify(action.slice(0, 80))}: read-only mode allows only read actions (${why})`);
}
