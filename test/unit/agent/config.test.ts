import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../../src/common/config-file.ts';
import { pinoLevel } from '../../../src/common/log-level.ts';
import { applySecretSources, assertCaCert, DEFAULTS, parseConfigText } from '../../../src/agent/config.ts';
import { readEnrollToken } from '../../../src/agent/secrets.ts';
import { createLogger } from '../../../src/agent/log.ts';

const SEED = `# Connection mode: pull, push, or ssh
mode: pull
server_url: https://tuxsec.example.com
agent_id: null  # Set during registration
api_key: null   # Set during registration
poll_interval: 30
listen_host: 0.0.0.0
listen_port: 8443
ssl_cert: /etc/tuxsec/certs/agent.crt
ssl_key: /etc/tuxsec/certs/agent.key
ca_cert: /etc/tuxsec/certs/ca.crt
log_level: INFO
log_file: /var/log/tuxsec/agent.log
`;

test('parseConfigText accepts the seed README example and fills defaults', () => {
  const c = parseConfigText(SEED, 'agent.yaml');
  assert.equal(c.mode, 'pull');
  assert.equal(c.server_url, 'https://tuxsec.example.com');
  assert.equal(c.agent_id, null);
  assert.equal(c.rootd_socket, '/var/run/tuxsec/rootd.sock');
  assert.equal(c.state_dir, '/var/lib/tuxsec');
  assert.equal(c.outbox_max_entries, DEFAULTS.outbox_max_entries);
  assert.equal(pinoLevel(c.log_level), 'info');
  assert.equal(pinoLevel('WARNING'), 'warn');
});

const BAD: Array<[string, string]> = [
  ['colour: blue\n', 'unknown key "colour"'],
  ['mode: pul\n', 'key "mode"'],
  ['server_url: http://plain.example.com\n', 'key "server_url"'],
  ['poll_interval: 0\n', 'key "poll_interval"'],
  ['poll_interval: "30"\n', 'key "poll_interval"'],
  ['listen_port: 70000\n', 'key "listen_port"'],
  ['log_level: LOUD\n', 'key "log_level"'],
  ['state_dir: relative/dir\n', 'key "state_dir"'],
  ['rootd_socket: ""\n', 'key "rootd_socket"'],
  ['outbox_max_entries: -1\n', 'key "outbox_max_entries"'],
  ['outbox_max_bytes: 10\n', 'key "outbox_max_bytes"'],
  ['ssl_cert: /a.pem\n', 'key "ssl_key"'],
  ['policy: {allow: ["bad rule"]}\n', 'key "policy.allow.0"'],
  ['policy: {extra: []}\n', 'key "policy'],
  ['- a\n- b\n', 'top level'],
  ['mode: [unclosed\n', 'invalid YAML'],
];

for (const [text, want] of BAD) {
  test(`parseConfigText refuses ${JSON.stringify(text.trim())} naming ${want}`, () => {
    assert.throws(() => parseConfigText(text, 'agent.yaml'), (e: Error) => e instanceof ConfigError && e.message.includes(want) && e.message.startsWith('cannot load config agent.yaml'));
  });
}

test('parseConfigText never shows the api_key value in an error', () => {
  assert.throws(() => parseConfigText('api_key: ""\n', 'a.yaml'), (e: Error) => e.message.includes('key "api_key"') && e.message.includes('(hidden)'));
  assert.throws(() => parseConfigText('api_key: [s3cr3t-value]\n', 'a.yaml'), (e: Error) => !e.message.includes('s3cr3t'));
});

test('applySecretSources prefers the systemd credential, then TUXSEC_API_KEY, then the file', () => {
  const base = { ...DEFAULTS, api_key: 'from-file' };
  const files: Record<string, string> = { '/run/creds/api_key': 'from-credential\n' };
  const readFile = (p: string) => {
    if (p in files) return files[p]!;
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  };
  assert.equal(applySecretSources(base, { env: {}, readFile }).api_key, 'from-file');
  assert.equal(applySecretSources(base, { env: { TUXSEC_API_KEY: 'from-env' }, readFile }).api_key, 'from-env');
  assert.equal(
    applySecretSources(base, { env: { TUXSEC_API_KEY: 'from-env', CREDENTIALS_DIRECTORY: '/run/creds' }, readFile }).api_key,
    'from-credential',
  );
  assert.equal(applySecretSources(base, { env: { TUXSEC_API_KEY: 'from-env', CREDENTIALS_DIRECTORY: '/nowhere' }, readFile }).api_key, 'from-env');
  assert.throws(() => applySecretSources(base, { env: { TUXSEC_API_KEY: 'two words' }, readFile }), /TUXSEC_API_KEY/);
});

test('applySecretSources reads api_key_file after the credential and TUXSEC_API_KEY, before agent.yaml, and refuses one group or others can read', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-keyfile-'));
  try {
    const file = path.join(dir, 'api_key');
    const base = { ...DEFAULTS, api_key: 'from-config', api_key_file: file };
    assert.equal(applySecretSources(base, { env: {} }).api_key, 'from-config', 'a missing api_key_file is no key');
    fs.writeFileSync(file, 'from-key-file\n', { mode: 0o600 });
    assert.equal(applySecretSources(base, { env: {} }).api_key, 'from-key-file');
    assert.equal(applySecretSources(base, { env: { TUXSEC_API_KEY: 'from-env' } }).api_key, 'from-env');
    for (const mode of [0o640, 0o604, 0o660]) {
      fs.chmodSync(file, mode);
      assert.throws(() => applySecretSources(base, { env: {} }), /^ConfigError: cannot read api_key_file ".*api_key": mode 0(640|604|660) lets group or others read the api_key; run "tuxsec-agent migrate-secrets"/);
    }
    fs.chmodSync(file, 0o600);
    fs.symlinkSync(file, path.join(dir, 'link'));
    assert.throws(() => applySecretSources({ ...base, api_key_file: path.join(dir, 'link') }, { env: {} }), /cannot read api_key_file .*: it is a symbolic link/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('readEnrollToken takes the token from exactly one source and checks its shape', () => {
  const stdin = () => ' tok-stdin\n';
  assert.equal(readEnrollToken({ env: {} }), undefined);
  assert.equal(readEnrollToken({ token: 'tok-arg', env: {} }), 'tok-arg');
  assert.equal(readEnrollToken({ token: '-', env: {}, readStdin: stdin }), 'tok-stdin');
  assert.equal(readEnrollToken({ tokenFile: '-', env: {}, readStdin: stdin }), 'tok-stdin');
  assert.equal(readEnrollToken({ env: { TUXSEC_ENROLL_TOKEN: 'tok-env' } }), 'tok-env');
  assert.throws(() => readEnrollToken({ token: 'a', env: { TUXSEC_ENROLL_TOKEN: 'b' } }), /^ConfigError: cannot register: give the enrollment token once/);
  assert.throws(() => readEnrollToken({ token: 'a', tokenFile: '/x', env: {} }), /give the enrollment token once/);
  assert.throws(() => readEnrollToken({ tokenFile: '-', env: {}, readStdin: () => 'two words' }), /the value must be 1\.\.1024 characters without spaces/);
  assert.throws(() => readEnrollToken({ tokenFile: '/nonexistent/tok', env: {} }), /cannot read --token-file "\/nonexistent\/tok": no such file/);
  assert.throws(() => readEnrollToken({ tokenFile: '/etc', env: {} }), /cannot read --token-file "\/etc": not a regular file/);
});

test('createLogger redacts api_key and the X-API-Key header wherever they appear', () => {
  let out = '';
  const stream = new Writable({
    write(c, _e, cb) {
      out += String(c);
      cb();
    },
  });
  const log = createLogger({ level: 'info', stream });
  log.info({ api_key: 'k-1', config: { api_key: 'k-2' }, req: { headers: { 'x-api-key': 'k-3' } }, enrollment_token: 'k-4' }, 'hello');
  assert.match(out, /hello/);
  for (const k of ['k-1', 'k-2', 'k-3', 'k-4']) assert.ok(!out.includes(k), `${k} leaked: ${out}`);
});

test('assertCaCert names what a missing ca_cert is for in each mode', () => {
  const missing = '/nonexistent/tuxsec-ca.crt';
  assert.throws(() => assertCaCert({ ...DEFAULTS, mode: 'pull', ca_cert: missing }, 'agent.yaml'), /signed the server's certificate, or set "ca_cert: null" in agent\.yaml to trust the system's CAs/);
  assert.throws(() => assertCaCert({ ...DEFAULTS, mode: 'push', ca_cert: missing }, 'agent.yaml'), /signed the server's client certificates, or set "ca_cert: null" in agent\.yaml to ask for none/);
});
