/**
 * The console's requests end: one the server never answers fails after REQUEST_DEADLINE_MS (plus
 * the `wait` of a long poll) with an error saying so, so a page reading it reads again later
 * instead of waiting for good. `fetch` is a stub that never answers but honours its signal.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { api, REQUEST_DEADLINE_MS } from '../../../console/src/api.ts';

const realFetch = globalThis.fetch;
/** Lets the promise chains that the mocked timers started run. */
const turns = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};
let signals: AbortSignal[] = [];

// Hooks inside a suite: the unit tests run as one module, where top-level hooks (here: mocked
// timers) would apply to every other file's tests.
describe('console requests end', () => {
  beforeEach(() => {
    signals = [];
    mock.timers.enable({ apis: ['setTimeout'] });
    globalThis.fetch = ((_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        const signal = init.signal!;
        signals.push(signal);
        signal.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')));
      })) as typeof fetch;
  });

  afterEach(() => {
    mock.timers.reset();
    globalThis.fetch = realFetch;
  });

  /** What `GET path` came to after `ms` of mocked time, and 1 ms later (null: still waiting). */
  async function outcome(path: string, ms: number): Promise<[unknown, unknown]> {
    let settled: unknown = null;
    void api('GET', path).then(
      () => (settled = 'answered'),
      (e: Error) => (settled = e.message),
    );
    await turns();
    mock.timers.tick(ms - 1);
    await turns();
    const before = settled;
    mock.timers.tick(1);
    await turns();
    return [before, settled];
  }

  test('a request without an answer fails after the deadline, naming it', async () => {
    assert.deepEqual(await outcome('/batches/x', REQUEST_DEADLINE_MS), [null, `no answer from the server within ${REQUEST_DEADLINE_MS / 1000} s`]);
    assert.equal(signals[0]!.aborted, true, 'the request itself was aborted');
  });

  test('a long poll gets its wait on top of the deadline', async () => {
    assert.deepEqual(await outcome('/jobs/x?wait=25', REQUEST_DEADLINE_MS + 25_000), [null, `no answer from the server within ${REQUEST_DEADLINE_MS / 1000 + 25} s`]);
  });
});
