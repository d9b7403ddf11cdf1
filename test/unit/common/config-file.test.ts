/**
 * The one config loader: rootd.yaml, agent.yaml and tuxsec-server.yaml are read with the same
 * limits and refused with messages of the same shape.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig as loadAgentConfig } from '../../../src/agent/config.ts';
import { ConfigError, MAX_CONFIG_ALIASES } from '../../../src/common/config-file.ts';
import { pinoLevel } from '../../../src/common/log-level.ts';
import { loadRootdConfig } from '../../../src/rootd/config.ts';
import { loadConfig as loadServerConfig } from '../../../src/server/config.ts';

const LOADERS: Array<[string, (file: string) => unknown, string]> = [
  ['rootd', (f) => loadRootdConfig(f, true), ''],
  ['agent', (f) => loadAgentConfig(f, {}, { env: {} }), ''],
  ['server', (f) => loadServerConfig(f), `tls_cert: c.pem\ntls_key: k.pem\nadmin_token: ${'a'.repeat(32)}\n`],
];

/** A mapping using `n` aliases of one anchor, under a key every schema refuses. */
function aliases(n: number): string {
  return `x: &a [1]\ny: [${Array.from({ length: n }, () => '*a').join(', ')}]\n`;
}

for (const [name, load, base] of LOADERS) {
  test(`loadConfig of ${name} refuses alike: alias limit, unknown key, bad value, missing file, invalid YAML`, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-config-file-'));
    const file = path.join(dir, `${name}.yaml`);
    const refuses = (text: string, re: RegExp) => {
      writeFileSync(file, base + text);
      assert.throws(() => load(file), (e: Error) => e instanceof ConfigError && re.test(e.message), `${name}: ${JSON.stringify(text.slice(0, 60))}`);
    };
    try {
      const pre = `^cannot load config ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `;
      refuses(aliases(MAX_CONFIG_ALIASES + 1), new RegExp(`${pre}invalid YAML: .*alias`, 'i'));
      // Within the limit the YAML is read, and the unknown key is what is refused.
      refuses(aliases(MAX_CONFIG_ALIASES / 2), new RegExp(`${pre}unknown key "x"$`));
      refuses('log_level: loud\n', new RegExp(`${pre}key "log_level": "loud" is invalid: `));
      refuses('log_level: [\n', new RegExp(`${pre}invalid YAML: `));
      rmSync(file);
      assert.throws(() => load(file), (e: Error) => new RegExp(`${pre}no such file$`).test(e.message));
      // The seed's Python level names, in any case, and an empty value meaning the default.
      writeFileSync(file, `${base}log_level: Warning\n`);
      assert.equal(pinoLevel((load(file) as { log_level: string }).log_level), 'warn');
      writeFileSync(file, `${base}log_level:\n`);
      assert.equal(pinoLevel((load(file) as { log_level: string }).log_level), 'info');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
