/**
 * Runs tuxsec-server: opens storage, builds the app with TLS from the config, listens, and shuts
 * down gracefully on SIGTERM/SIGINT (stop accepting, answer held long-polls, close the database).
 */
import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { buildApp } from './app.ts';
import { ConfigError } from '../common/config-file.ts';
import type { ServerConfig } from './config.ts';
import { openSqliteStorage } from './storage/sqlite.ts';

function readPem(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`cannot use config key "${key}" = "${file}": ${(e as Error).message}`);
  }
}

export function tlsOptions(cfg: ServerConfig): HttpsServerOptions {
  const opts: HttpsServerOptions = {
    cert: readPem('tls_cert', cfg.tls_cert),
    key: readPem('tls_key', cfg.tls_key),
    minVersion: 'TLSv1.2',
  };
  if (cfg.client_ca !== undefined) {
    opts.ca = readPem('client_ca', cfg.client_ca);
    opts.requestCert = true;
    opts.rejectUnauthorized = true;
  }
  return opts;
}

/** Starts the server; resolves with the address once listening. */
export async function serve(cfg: ServerConfig): Promise<string> {
  const https = tlsOptions(cfg);
  const agentTls =
    cfg.agent_client_cert === undefined || cfg.agent_client_key === undefined
      ? undefined
      : { cert: readPem('agent_client_cert', cfg.agent_client_cert), key: readPem('agent_client_key', cfg.agent_client_key) };
  const storage = openSqliteStorage(cfg.database);
  const { app } = buildApp({ config: cfg, storage, https, agentTls });
  let closing = false;
  const stop = (signal: string): void => {
    if (closing) {
      app.log.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    app.log.info(`${signal}: shutting down`);
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'cannot shut down cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    // A large backlog: thousands of agents reconnect at once after a restart or an outage.
    const addr = await app.listen({ host: cfg.host, port: cfg.port, backlog: 4096 });
    // One plain line whatever the log level, for supervisors and tests that need the port.
    process.stderr.write(`tuxsec-server: listening at ${addr}\n`);
    return addr;
  } catch (e) {
    storage.close();
    throw e;
  }
}
