/**
 * The firewalld module: every action of FIREWALLD-ACTIONS.md (and a few more) on firewalld's
 * D-Bus API. Runtime by default, `permanent: true` through the config interfaces; every write
 * answers `changed`, accepts `dry_run`, and most accept `confirm_timeout` (see change-guard.ts).
 */
import { existsSync } from 'node:fs';
import { ActionModule, type InitResult, type ModuleContext } from '../../../sdk/base-module.ts';
import type { ActionContext, AnyAction, Logger } from '../../../sdk/action.ts';
import type { CommandRequest, CommandResponse } from '../../../sdk/base-module.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { DbusConnection, type DbusClient } from '../../../os/dbus.ts';
import { FirewalldClient } from './dbus.ts';
import { ChangeGuard } from './change-guard.ts';
import type { Deps } from './common.ts';
import { zoneActions } from './zones.ts';
import { portActions } from './ports.ts';
import { richRuleActions } from './rich-rules.ts';
import { serviceActions } from './services.ts';
import { ipsetActions } from './ipsets.ts';
import { helperActions } from './conntrack-helpers.ts';
import { policyActions } from './policies.ts';
import { directActions } from './direct.ts';
import { lockdownActions } from './lockdown.ts';
import { globalActions } from './global.ts';
import { serviceUnitActions } from './service-unit.ts';
import { zoneSettingsActions } from './zone-settings.ts';
import { withPythonKeys } from './python-results.ts';

/** Actions that work while firewalld is not running. */
const WITHOUT_FIREWALLD = new Set(['get_status', 'service_status', 'start_service', 'get_pending_changes', 'get_signal_stats']);

export interface FirewalldModuleOptions {
  /** Makes the bus connection; default the system bus. */
  bus?: () => DbusClient;
  /** Whether a file exists (replaceable to test "not installed"). */
  exists?: (path: string) => boolean;
  /** The firewalld program whose presence means "installed". */
  firewalldPath?: string;
  /** systemd unit of firewalld. */
  unit?: string;
  /** Timeout of one firewalld D-Bus call, ms. */
  callTimeoutMs?: number;
}

/** Default file of changes awaiting confirmation (settings.pending_file overrides it). */
export const DEFAULT_PENDING_FILE = '/var/lib/tuxsec-rootd/firewalld-pending.json';

const quietLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export class FirewalldModule extends ActionModule {
  readonly fw: FirewalldClient;
  readonly guard: ChangeGuard;
  private log: Logger = quietLog;
  private readonly deps: Deps;

  constructor(private readonly opts: FirewalldModuleOptions = {}) {
    super();
    const bus = opts.bus ? opts.bus() : new DbusConnection();
    this.fw = new FirewalldClient(bus, opts.callTimeoutMs ?? 15_000);
    // The guard logs through whatever logger initialize() receives.
    const log: Logger = {
      debug: (o, m) => this.log.debug(o, m),
      info: (o, m) => this.log.info(o, m),
      warn: (o, m) => this.log.warn(o, m),
      error: (o, m) => this.log.error(o, m),
    };
    this.guard = new ChangeGuard(this.fw, log);
    this.deps = { fw: this.fw, guard: this.guard };
    this.fw.on('down', () => this.log.warn('firewalld left the bus'));
    this.fw.on('up', () => this.log.info('firewalld is on the bus'));
  }

  get name(): string {
    return 'firewalld';
  }
  get version(): string {
    return '1.0.0';
  }
  get description(): string {
    return 'firewalld management over D-Bus: zones, services, ports, rich rules, ipsets, policies, direct rules, lockdown';
  }

  protected defineActions(): AnyAction[] {
    const d = this.deps;
    return [
      ...globalActions(d),
      ...zoneActions(d),
      ...serviceActions(d),
      ...portActions(d),
      ...richRuleActions(d),
      ...zoneSettingsActions(d),
      ...ipsetActions(d),
      ...helperActions(d),
      ...policyActions(d),
      ...directActions(d),
      ...lockdownActions(d),
      ...serviceUnitActions(d, this.opts.unit ?? 'firewalld.service'),
    ];
  }

  override async initialize(ctx?: ModuleContext): Promise<InitResult> {
    if (ctx?.log) this.log = ctx.log;
    const exists = this.opts.exists ?? existsSync;
    const program = this.opts.firewalldPath ?? '/usr/sbin/firewalld';
    if (!exists(program)) return [false, `firewalld is not installed (${program} not found)`];
    const pendingFile = ctx?.settings.pending_file ?? DEFAULT_PENDING_FILE;
    if (typeof pendingFile !== 'string' || !pendingFile.startsWith('/') || pendingFile.length > 4096 || [...pendingFile].some((c) => c.charCodeAt(0) < 0x20)) {
      return [false, `invalid value for setting modules.firewalld.settings.pending_file: expected an absolute path`];
    }
    try {
      await this.fw.watch();
    } catch (e) {
      // The bus may come later; the connection retries by itself and the actions say why they fail.
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'system D-Bus not reachable yet');
    }
    if (!this.fw.running) this.log.warn('firewalld is installed but not running');
    await this.guard.restore(pendingFile);
    return [true, null];
  }

  override async executeCommand(command: CommandRequest, ctx: ActionContext): Promise<CommandResponse> {
    if (!this.fw.running && !WITHOUT_FIREWALLD.has(command.action) && this.actions.has(command.action)) {
      // The owner may have come back between signals; ask once before refusing.
      if (!(await this.fw.refreshOwner())) {
        throw new TuxsecError(ErrorCodes.firewalldNotRunning, `cannot run firewalld ${command.action}: firewalld is not running (start it with start_service)`);
      }
    }
    return withPythonKeys(command.action, command.parameters, await super.executeCommand(command, ctx));
  }

  override async shutdown(): Promise<void> {
    await this.guard.close().catch(() => undefined);
    this.fw.bus.close();
  }
}
