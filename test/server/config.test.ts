/**
 * Server config validation: unknown keys and bad values are refused with the key named; defaults,
 * relative paths and the admin token file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, validateConfig } from '../../src/server/config.ts';

const base = { tls_cert: 'c.pem', tls_key: 'k.pem', admin_token: 'a'.repeat(32) };

test('validateConfig fills defaults and resolves relative paths', () => {
  const c = validateConfig(base, '/etc/tuxsec/server.yaml');
  assert.equal(c.listen, '127.0.0.1:8443');
  assert.deepEqual([c.host, c.port], ['127.0.0.1', 8443]);
  assert.equal(c.tls_cert, '/etc/tuxsec/c.pem');
  assert.equal(c.database, '/var/lib/tuxsec-server/server.db');
  assert.equal(c.require_enrollment_token, true);
  assert.deepEqual([c.long_poll_max, c.sync_interval, c.job_default_ttl, c.redeliver_after], [30, 30, 86400, 15]);
  assert.equal(c.adminToken, 'a'.repeat(32));
  assert.deepEqual([validateConfig({ ...base, listen: '[::1]:9000' }, '/server.yaml').host, validateConfig({ ...base, listen: '[::1]:9000' }, '/server.yaml').port], ['::1', 9000]);
});

test('validateConfig names the key of an unknown key or a bad value', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...base, listn: '1.2.3.4:5' }, /unknown key "listn"/],
    [{ ...base, long_poll_max: 0 }, /key "long_poll_max": 0 is invalid/],
    [{ ...base, long_poll_max: 'x' }, /"long_poll_max"/],
    [{ ...base, sync_interval: 1.5 }, /"sync_interval"/],
    [{ ...base, require_enrollment_token: 'yes' }, /"require_enrollment_token"/],
    [{ ...base, listen: 'localhost' }, /key "listen": "localhost" is invalid: expected host:port/],
    [{ ...base, listen: 'h:99999' }, /"listen"/],
    [{ ...base, log_level: 'loud' }, /"log_level"/],
    [{ ...base, server_url: 'http://x' }, /"server_url"/],
    [{ tls_key: 'k', admin_token: 'a'.repeat(32) }, /"tls_cert"/],
    [{ ...base, admin_token: 'short' }, /"admin_token"/],
    [{ tls_cert: 'c', tls_key: 'k' }, /"admin_token": set exactly one/],
    [{ ...base, admin_token_file: '/x' }, /"admin_token": set exactly one/],
    [{ ...base, client_cert: '/c' }, /"client_cert"/],
    [{ ...base, max_connections: 0 }, /key "max_connections": 0 is invalid/],
    [{ ...base, max_connections_per_ip: -1 }, /"max_connections_per_ip"/],
    [{ ...base, register_rate_limit: 0 }, /"register_rate_limit"/],
    [{ ...base, pending_max_age: 0 }, /"pending_max_age"/],
    [{ ...base, header_timeout: 40, request_timeout: 30 }, /key "header_timeout": 40 is invalid: longer than request_timeout \(30\)/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(() => validateConfig(raw, '/'), (e: Error) => {
      assert.match(e.message, re);
      assert.match(e.message, /^cannot /);
      return true;
    }, JSON.stringify(raw));
  }
  assert.throws(() => validateConfig([1], '/server.yaml'), /cannot load config \/server.yaml: the top level must be a mapping of keys$/);
});

test('loadConfig reads YAML and the admin token file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-server-config-'));
  try {
    writeFileSync(path.join(dir, 'admin.token'), `${'z'.repeat(40)}\n`);
    writeFileSync(path.join(dir, 'server.yaml'), 'listen: 0.0.0.0:443\ntls_cert: c.pem\ntls_key: k.pem\nadmin_token_file: admin.token\nrequire_enrollment_token: false\n');
    const c = loadConfig(path.join(dir, 'server.yaml'));
    assert.equal(c.adminToken, 'z'.repeat(40));
    assert.equal(c.require_enrollment_token, false);
    assert.equal(c.tls_key, path.join(dir, 'k.pem'));
    writeFileSync(path.join(dir, 'short.token'), 'abc\n');
    writeFileSync(path.join(dir, 'bad.yaml'), 'tls_cert: c\ntls_key: k\nadmin_token_file: short.token\n');
    assert.throws(() => loadConfig(path.join(dir, 'bad.yaml')), /"admin_token_file".*16 to 512/);
    writeFileSync(path.join(dir, 'broken.yaml'), 'listen: [\n');
    assert.throws(() => loadConfig(path.join(dir, 'broken.yaml')), /cannot load config .*broken\.yaml: invalid YAML/);
    assert.throws(() => loadConfig(path.join(dir, 'missing.yaml')), /cannot load config .*missing\.yaml: no such file$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('validateConfig never shows the admin token in a message', () => {
  // Too short, and a long digit string YAML reads as a number: both refused without the value.
  for (const tok of ['s3cr3t-short', 1234567890123456]) {
    assert.throws(() => validateConfig({ ...base, admin_token: tok }, '/server.yaml'), (e: Error) => {
      assert.match(e.message, /"admin_token"/);
      assert.ok(!e.message.includes(String(tok).slice(0, 8)), e.message);
      return true;
    });
  }
});
