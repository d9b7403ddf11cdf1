/**
 * writeConfigAtomic, as `tuxsec-agent register` (root) uses it to store the api_key: the config's
 * owner and group bits are kept, but never a world-readable mode.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { writeConfigAtomic } from '../../../src/agent/register.ts';

test('writeConfigAtomic never leaves the api_key readable by every user', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-register-'));
  try {
    const file = path.join(dir, 'agent.yaml');
    // A config installed world-readable (e.g. an original agent's 0644 file).
    fs.writeFileSync(file, 'mode: pull\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    writeConfigAtomic(file, 'mode: pull\napi_key: k\n');
    assert.equal(fs.statSync(file).mode & 0o7777, 0o640);
    fs.chmodSync(file, 0o600);
    writeConfigAtomic(file, 'mode: pull\napi_key: k2\n');
    assert.equal(fs.statSync(file).mode & 0o7777, 0o600, 'a tighter mode is kept');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
