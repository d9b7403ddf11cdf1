/** What tests of module actions share to look at a refusal. */
import assert from 'node:assert/strict';
import { TuxsecError } from '../../src/protocol/errors.ts';

/** The TuxsecError a call fails with; fails the test when it succeeds or throws anything else. */
export async function failure(p: Promise<unknown>): Promise<TuxsecError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TuxsecError, `expected TuxsecError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}
