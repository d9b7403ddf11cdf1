/**
 * `tuxsec-cli doctor`: each item of the troubleshooting guide checked on this host, as the user
 * who runs it, with the guide's fix for each failure. It only looks: nothing is changed.
 *
 * Loaded by main.ts only when `doctor` runs (its own bundle, dist/tuxsec-cli-doctor.cjs): the
 * YAML parser, the config schemas and the HTTPS client would otherwise slow every other command.
 */
import { accessSync, constants, lstatSync, type Stats } from 'node:fs';
import path from 'node:path';
import { RootdClient } from '../client/rootd-client.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { isPlainObject } from '../protocol/json.ts';
import { SOCKET_DIR_MODE, SOCKET_MODE } from '../protocol/messages.ts';
import { DEFAULT_CONFIG_FILE, loadRootdConfig, type RootdConfig } from '../rootd/config.ts';
import { DEFAULT_CONFIG_PATH, parseConfigText, settingsForMode, type AgentConfig } from '../agent/config.ts';
import { readConfigText } from '../common/config-file.ts';
import { assertTrustedPath } from '../os/secure-files.ts';
import { lookupGroup, type GroupEntry } from '../os/users.ts';
import { fail, pass, renderText, skip, unreadable, whoAmI, type Check } from './doctor-report.ts';
import { certificateChecks, serverChecks } from './doctor-tls.ts';

export interface DoctorOptions {
  socketPath: string;
  /** Default /etc/tuxsec/rootd.yaml. */
  rootdConfig?: string | undefined;
  /** Default /etc/tuxsec/agent.yaml. */
  agentConfig?: string | undefined;
  json: boolean;
}

const RESTART_ROOTD = 'sudo systemctl restart tuxsec-rootd';
const PING_TIMEOUT_MS = 5000;
const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

type Loaded<T> = { cfg: T } | { check: Check };

/** A config file through the one loader; a file this user may not read is a skip, not a failure. */
function loadConfig<T>(name: string, file: string, load: () => T, missing: () => Check | null, checkCmd: string): Loaded<T> {
  try {
    accessSync(file, constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return { check: unreadable(name, file) };
    const m = code === 'ENOENT' ? missing() : null;
    if (m) return { check: m };
  }
  try {
    return { cfg: load() };
  } catch (e) {
    return { check: fail(name, (e as Error).message, `correct the key the message names, then check the file: ${checkCmd}`) };
  }
}

function loadRootd(file: string): { cfg: RootdConfig | null; check: Check } {
  const r = loadConfig('rootd-config', file, () => loadRootdConfig(file, false), () => null, `sudo tuxsec-rootd --check-config --config ${file}`);
  if ('check' in r) return { cfg: null, check: r.check };
  return { cfg: r.cfg, check: pass('rootd-config', `${file}: valid${safeExists(file) ? '' : ' (not there: rootd uses the defaults)'}`) };
}

function loadAgent(file: string): { cfg: AgentConfig | null; check: Check } {
  const r = loadConfig(
    'agent-config',
    file,
    () => {
      const text = readConfigText(file)!;
      const cfg = parseConfigText(text, file);
      return settingsForMode(cfg, Object.keys(cfg)).cfg;
    },
    () => skip('agent-config', `no ${file} (the agent is not set up on this host)`),
    `sudo tuxsec-agent --check-config --config ${file}`,
  );
  if ('check' in r) return { cfg: null, check: r.check };
  return { cfg: r.cfg, check: pass('agent-config', `${file}: valid (mode ${r.cfg.mode})`) };
}

function safeExists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

function lstatOr(p: string): Stats | NodeJS.ErrnoException {
  try {
    return lstatSync(p);
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
}

/** The socket directory as rootd makes it (0750 root:group) and requires it (only root writes it or any directory above). */
function socketDirCheck(dir: string, group: string, gid: number | null): Check {
  const name = 'socket-directory';
  const fix = `make it root's, 0750 root:${group}: sudo chown root:${group} ${dir} && sudo chmod 0750 ${dir}`;
  const st = lstatOr(dir);
  if (st instanceof Error) {
    const code = st.code;
    if (code === 'ENOENT') return fail(name, `${dir} does not exist`, `start tuxsec-rootd, which creates it 0750 root:${group}: sudo systemctl start tuxsec-rootd`);
    if (code === 'EACCES') return skip(name, `${dir} cannot be seen as ${whoAmI().text}`);
    return fail(name, `${dir}: ${code ?? st.message}`, fix);
  }
  const problems: string[] = [];
  if (st.isSymbolicLink()) problems.push('it is a symbolic link');
  else if (!st.isDirectory()) problems.push('not a directory');
  if (st.uid !== 0) problems.push(`owned by uid ${st.uid}, not root`);
  if (st.mode & 0o022) problems.push(`group or others can write it (mode ${octal(st.mode)})`);
  if (gid !== null && st.gid !== gid) problems.push(`its group is gid ${st.gid}, not ${group} (${gid})`);
  if (!(st.mode & 0o010)) problems.push(`the group cannot pass through it (mode ${octal(st.mode)})`);
  try {
    assertTrustedPath(path.dirname(dir));
  } catch (e) {
    problems.push(`${(e as Error).message}, so others could replace the socket directory`);
  }
  if (problems.length) return fail(name, `${dir}: ${problems.join('; ')}`, fix);
  const note = (st.mode & 0o777) === SOCKET_DIR_MODE ? '' : ` (rootd makes it ${octal(SOCKET_DIR_MODE)})`;
  return pass(name, `${dir}: ${octal(st.mode)} root:${group}${note}`);
}

/** The socket as rootd binds it: 0660 root:group. */
function socketCheck(socketPath: string, group: string, gid: number | null): Check {
  const name = 'socket';
  const st = lstatOr(socketPath);
  if (st instanceof Error) {
    if (st.code === 'ENOENT') return fail(name, `${socketPath} does not exist (is tuxsec-rootd running?)`, 'start it: sudo systemctl start tuxsec-rootd');
    if (st.code === 'EACCES') return skip(name, `${path.dirname(socketPath)} cannot be searched as ${whoAmI().text} (see socket-group)`);
    return fail(name, `${socketPath}: ${st.code ?? st.message}`, RESTART_ROOTD);
  }
  if (!st.isSocket()) return fail(name, `${socketPath} is not a socket`, `remove what is in the way (sudo ls -l ${socketPath}), then ${RESTART_ROOTD}`);
  if (st.uid !== 0) {
    return fail(name, `${socketPath} is a socket of uid ${st.uid}, not of root: not tuxsec-rootd's`, `find what listens there (sudo ss -xlp | grep ${path.basename(socketPath)}), stop it, then ${RESTART_ROOTD}`);
  }
  if ((st.mode & 0o777) !== SOCKET_MODE || (gid !== null && st.gid !== gid)) {
    return fail(name, `${socketPath}: mode ${octal(st.mode)}, group gid ${st.gid}; rootd makes it ${octal(SOCKET_MODE)} root:${group}`, `${RESTART_ROOTD} (it binds the socket ${octal(SOCKET_MODE)} root:${group})`);
  }
  return pass(name, `${socketPath}: ${octal(st.mode)} root:${group}`);
}

/** Whether this process (not only the group file) has the socket group. */
function groupCheck(group: string, entry: GroupEntry | null): Check {
  const name = 'socket-group';
  const me = whoAmI();
  if (me.uid === 0) return pass(name, 'root needs no group');
  if (!entry) return fail(name, `group "${group}" does not exist`, `sudo groupadd --system ${group}, then ${RESTART_ROOTD}`);
  const mine = new Set([process.getgid?.(), ...(process.getgroups?.() ?? [])]);
  if (mine.has(entry.gid)) return pass(name, `${me.text} is in group ${group}`);
  const user = me.name ?? String(me.uid);
  if (me.name !== null && entry.members.includes(me.name)) {
    return fail(name, `${me.text} was added to group ${group}, but this login session does not have it yet`, `log in again (or run: newgrp ${group})`);
  }
  return fail(name, `${me.text} is not in group ${group}, the socket's group`, `sudo usermod -a -G ${group} ${user}, then log in again`);
}

interface RootdAnswers {
  checks: Check[];
  client: RootdClient | null;
}

/** rootd answers a ping, and serves this user (allowed_users: only rootd knows, so it is asked). */
async function rootdChecks(socketPath: string): Promise<RootdAnswers> {
  const client = new RootdClient({ socketPath, timeoutMs: PING_TIMEOUT_MS });
  const me = whoAmI();
  const t = performance.now();
  try {
    await client.ping();
    const served = me.uid === 0 ? 'root is always served' : `tuxsec-rootd serves ${me.text}`;
    return { checks: [pass('rootd', `answers at ${socketPath} in ${(performance.now() - t).toFixed(1)} ms`), pass('allowed-users', served)], client };
  } catch (e) {
    client.close();
    const msg = e instanceof Error ? e.message : String(e);
    if (isTuxsecError(e) && e.code === ErrorCodes.permissionDenied) {
      return {
        checks: [
          pass('rootd', `answers at ${socketPath}, and refuses ${me.text}`),
          fail('allowed-users', msg, `add ${me.name ?? me.uid} to allowed_users (or read_only_users) in rootd.yaml, then sudo systemctl reload tuxsec-rootd`),
        ],
        client: null,
      };
    }
    const errno = isTuxsecError(e) ? e.details?.errno : undefined;
    const notAsked = skip('allowed-users', 'tuxsec-rootd did not answer');
    if (errno === 'EACCES') return { checks: [skip('rootd', `${msg} (see socket-group)`), notAsked], client: null };
    const fix =
      errno === 'ENOENT'
        ? 'start it: sudo systemctl start tuxsec-rootd'
        : errno === 'ECONNREFUSED'
          ? `it died: check journalctl -u tuxsec-rootd, then ${RESTART_ROOTD}`
          : `check journalctl -u tuxsec-rootd and what listens there (sudo ss -xlp | grep ${path.basename(socketPath)}), then ${RESTART_ROOTD}`;
    return { checks: [fail('rootd', msg, fix), notAsked], client: null };
  }
}

const MODULE_FIX =
  'see why in sudo journalctl -u tuxsec-rootd | grep -i module; for firewalld: sudo apt install firewalld ' +
  `(sudo dnf install firewalld on RHEL/Fedora) and sudo systemctl start firewalld; then ${RESTART_ROOTD}`;

/**
 * Modules that serve software many hosts do not have (a kernel without SELinux, no AIDE or ClamAV
 * installed): not being available there is how the host is, not a fault, so it is a skip.
 */
const HOST_OPTIONAL_MODULES: ReadonlySet<string> = new Set(['selinux', 'aide', 'clamav']);

/** Each module: available, disabled in rootd.yaml, or why not (list_modules' `unavailable`, systeminfo list_modules' `details`). */
async function moduleChecks(client: RootdClient): Promise<Check[]> {
  const listed = await client.request('list_modules');
  const out = new Map<string, Check>();
  for (const m of Array.isArray(listed.modules) ? listed.modules : []) {
    if (typeof m === 'string') out.set(m, pass(`module ${m}`, 'initialised'));
  }
  for (const u of Array.isArray(listed.unavailable) ? listed.unavailable : []) {
    if (!isPlainObject(u) || typeof u.name !== 'string') continue;
    const reason = typeof u.reason === 'string' ? u.reason : 'no reason given';
    const check =
      u.state === 'disabled'
        ? pass(`module ${u.name}`, 'disabled in rootd.yaml')
        : HOST_OPTIONAL_MODULES.has(u.name)
          ? skip(`module ${u.name}`, `not available on this host: ${reason} (set enabled: false for it in rootd.yaml to say so)`)
          : fail(`module ${u.name}`, `not available: ${reason}`, MODULE_FIX);
    out.set(u.name, check);
  }
  try {
    const installed = (await client.execute('systeminfo', 'list_modules')) as { details?: unknown };
    for (const d of Array.isArray(installed.details) ? installed.details : []) {
      if (!isPlainObject(d) || typeof d.name !== 'string' || d.loaded === true || out.has(d.name)) continue;
      const where = typeof d.file === 'string' ? ` (${d.file})` : '';
      out.set(d.name, fail(`module ${d.name}`, `not loaded${where}: ${typeof d.reason === 'string' ? d.reason : 'no reason given'}`, MODULE_FIX));
    }
  } catch {
    // systeminfo itself is unavailable or refused: list_modules above already said what it could
  }
  return [...out.values()];
}

/** Runs every check; returns them in the guide's order. */
export async function collectChecks(o: Omit<DoctorOptions, 'json'>): Promise<Check[]> {
  const rootd = loadRootd(o.rootdConfig ?? DEFAULT_CONFIG_FILE);
  const agent = loadAgent(o.agentConfig ?? DEFAULT_CONFIG_PATH);
  const group = rootd.cfg?.socket_group ?? 'tuxsec';
  let entry: GroupEntry | null = null;
  try {
    entry = await lookupGroup(group);
  } catch {
    // NSS down: the group checks say it does not exist, and the group is not compared
  }
  const gid = entry?.gid ?? null;
  const dir = path.dirname(o.socketPath);
  const checks: Check[] = [socketDirCheck(dir, group, gid), socketCheck(o.socketPath, group, gid), groupCheck(group, entry)];
  const answers = await rootdChecks(o.socketPath);
  checks.push(...answers.checks);
  if (answers.client) {
    try {
      checks.push(...(await moduleChecks(answers.client)));
    } catch (e) {
      checks.push(fail('modules', `cannot list the modules: ${(e as Error).message}`, `check journalctl -u tuxsec-rootd`));
    } finally {
      answers.client.close();
    }
  } else {
    checks.push(skip('modules', 'tuxsec-rootd did not answer'));
  }
  checks.push(rootd.check, agent.check);
  if (agent.cfg) {
    checks.push(...certificateChecks(agent.cfg, new Date()));
    checks.push(...(await serverChecks(agent.cfg)));
  } else {
    const why = 'agent.yaml was not read';
    checks.push(skip('certificates', why), skip('server', why), skip('clock', why));
  }
  return checks;
}

/** Prints the report; resolves with the exit status (1 when any check failed). */
export async function runDoctor(o: DoctorOptions): Promise<number> {
  const checks = await collectChecks(o);
  process.stdout.write(o.json ? JSON.stringify({ checks }, null, 2) + '\n' : renderText(checks));
  return checks.some((c) => c.ok === false) ? 1 : 0;
}
