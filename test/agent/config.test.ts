import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { applySecretSources, ConfigError, DEFAULTS, parseConfigText, pinoLevel } from '../../src/agent/config.ts';
import { createLogger } from '../../src/agent/log.ts';

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
