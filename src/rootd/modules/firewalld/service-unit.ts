/**
 * firewalld's systemd unit through systemd's D-Bus API (org.freedesktop.systemd1). When systemd
 * is not on the bus (containers, systemd not PID 1) these actions answer `service-unavailable`.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { DbusRemoteError } from '../../../os/dbus.ts';
import { unwrap } from './signature.ts';
import type { Deps } from './common.ts';
import { P } from './validate.ts';
import { Type } from '@sinclair/typebox';

const SD = 'org.freedesktop.systemd1';
const SD_PATH = '/org/freedesktop/systemd1';
const SD_MANAGER = 'org.freedesktop.systemd1.Manager';
const SD_UNIT = 'org.freedesktop.systemd1.Unit';

export function serviceUnitActions(d: Deps, unit: string): AnyAction[] {
  const sd = async (path: string, iface: string, member: string, sig: string, body: unknown[], what: string) => {
    try {
      // Ask first: a call to an absent systemd1 would make the bus try to activate it.
      const [has] = await d.fw.bus.call(
        { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameHasOwner', signature: 's', body: [SD] },
        { timeoutMs: 5000 },
      );
      if (has !== true) throw new DbusRemoteError('org.freedesktop.DBus.Error.NameHasNoOwner', `${SD} has no owner`);
      return await d.fw.bus.call({ destination: SD, path, interface: iface, member, signature: sig, body }, { timeoutMs: 30_000 });
    } catch (e) {
      if (e instanceof DbusRemoteError) {
        if (e.errorName === 'org.freedesktop.DBus.Error.ServiceUnknown' || e.errorName === 'org.freedesktop.DBus.Error.NameHasNoOwner') {
          throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: systemd is not running on this host (${SD} is not on the system bus)`);
        }
        if (e.errorName === 'org.freedesktop.systemd1.NoSuchUnit') throw new TuxsecError(ErrorCodes.notFound, `cannot ${what}: unit "${unit}" is not loaded`);
        throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: ${e.message.slice(0, 300)}`);
      }
      if (e instanceof TuxsecError && e.code === ErrorCodes.serviceUnavailable) {
        throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: the system D-Bus is not reachable`);
      }
      throw e;
    }
  };
  const prop = async (path: string, name: string) => unwrap((await sd(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [SD_UNIT, name], `read ${name} of ${unit}`))[0]);
  const status = async () => {
    const [path] = await sd(SD_PATH, SD_MANAGER, 'LoadUnit', 's', [unit], `read status of ${unit}`);
    const p = String(path);
    return {
      unit,
      load_state: await prop(p, 'LoadState'),
      active_state: await prop(p, 'ActiveState'),
      sub_state: await prop(p, 'SubState'),
      unit_file_state: await prop(p, 'UnitFileState').catch(() => null),
      firewalld_on_bus: d.fw.running,
    };
  };
  const job = (name: string, member: string, verb: string, access: 'write' | 'dangerous') =>
    defineAction({
      name,
      description: `${verb[0]!.toUpperCase()}${verb.slice(1)} firewalld service`,
      params: Params({ dry_run: P.dryRun(), wait: Type.Optional(Type.Boolean({ description: 'wait up to 30 s for the job to finish (default true)' })) }),
      access,
      handler: async (p) => {
        if (p.dry_run) {
          const s = await status();
          return { changed: true, dry_run: true, action: `${verb} ${unit}`, ...s };
        }
        const [jobPath] = await sd(SD_PATH, SD_MANAGER, member, 'ss', [unit, 'replace'], `${verb} ${unit}`);
        if (p.wait !== false) {
          const until = Date.now() + 30_000;
          while (Date.now() < until) {
            const s = await status();
            if (s.active_state !== 'activating' && s.active_state !== 'deactivating' && s.active_state !== 'reloading') break;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        return { changed: true, action: `${verb} ${unit}`, job: String(jobPath), ...(await status()) };
      },
    });
  return [
    defineAction({ name: 'service_status', description: 'Get firewalld service status', params: Params({}), access: 'read', handler: () => status() }),
    job('start_service', 'StartUnit', 'start', 'write'),
    // Stopping switches the whole firewall off, and no TuxSec action can then roll it back the way
    // confirm_timeout does for other writes: the operator must allow it like direct rules.
    job('stop_service', 'StopUnit', 'stop', 'dangerous'),
    job('restart_service', 'RestartUnit', 'restart', 'write'),
  ];
}
