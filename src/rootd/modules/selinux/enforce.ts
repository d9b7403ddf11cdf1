/**
 * get_status, get_enforce, set_enforce: the kernel's mode (selinuxfs) and the boot-time mode
 * (SELINUX= in the config file).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { invalid } from '../firewalld/validate.ts';
import type { Deps } from './deps.ts';
import { kernelState, needsKernel, readConfig, writeConfigMode, writeConfigText, writeEnforce, type Mode } from './state.ts';

const POLICY_ROOT = '/etc/selinux';
const SYSTEM_CONFIG = '/etc/selinux/config';
const STORE_ROOT = '/var/lib/selinux';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Version of the newest binary policy the config's policy type has on disk (policy.NN). */
function policyFileVersion(policyType: string | null): number | null {
  if (!policyType || !NAME.test(policyType)) return null;
  try {
    const vs = fs.readdirSync(path.join(POLICY_ROOT, policyType, 'policy')).map((f) => /^policy\.([0-9]{1,3})$/.exec(f)?.[1]).filter((v) => v !== undefined).map(Number);
    return vs.length ? Math.max(...vs) : null;
  } catch {
    return null;
  }
}

export function enforceActions(d: Deps): AnyAction[] {
  const status = () => {
    const k = kernelState(d.paths);
    const c = readConfig(d.configFile());
    // Without -S, semanage manages the store libselinux's own config names, whatever settings.config says.
    const storeName = d.store() ?? readConfig(SYSTEM_CONFIG).policyType;
    const store = storeName !== null && NAME.test(storeName) && d.exists(path.join(STORE_ROOT, storeName));
    const semanage = d.exists(d.tools.programPath('semanage'));
    return {
      enabled: k.enabled,
      mode: k.mode,
      reason: k.reason,
      policy_type: c.policyType,
      policy_version: k.policyVersion,
      policy_file_version: policyFileVersion(c.policyType),
      mls: k.mls,
      config: { path: c.path, exists: c.exists, mode: c.mode, policy_type: c.policyType },
      store: { name: storeName, present: store },
      programs: { semanage, setsebool: d.exists(d.tools.programPath('setsebool')), restorecon: d.exists(d.tools.programPath('restorecon')) },
      // What this host can serve: runtime actions need the kernel, store actions semanage and a store.
      available: { runtime: k.enabled, policy_store: semanage && store, persistent_mode: c.exists },
    };
  };
  return [
    defineAction({
      name: 'get_status',
      description: 'Get SELinux status: enabled, runtime and configured mode, policy type and version, and why SELinux is off',
      params: Params({}),
      access: 'read',
      shared: true,
      handler: status,
    }),
    defineAction({
      name: 'get_enforce',
      description: 'Get the runtime mode (enforcing, permissive or disabled) and the mode the config file sets at boot',
      params: Params({}),
      access: 'read',
      shared: true,
      handler: () => {
        const k = kernelState(d.paths);
        const c = readConfig(d.configFile());
        return { mode: k.mode, enabled: k.enabled, config_mode: c.mode, config: c.path, reason: k.reason };
      },
    }),
    defineAction({
      name: 'set_enforce',
      description: 'Set the mode at runtime (selinuxfs) and, with persistent, in the config file for the next boot',
      params: Params({
        mode: Type.Union([Type.Literal('enforcing'), Type.Literal('permissive'), Type.Literal('disabled')], {
          description: 'enforcing, permissive, or disabled (config file only: the kernel cannot switch SELinux off at runtime)',
        }),
        runtime: Type.Optional(Type.Boolean({ description: 'change the running kernel\'s mode (default true)' })),
        persistent: Type.Optional(Type.Boolean({ description: 'also write SELINUX= in the config file (default false)' })),
      }),
      // dangerous, like firewalld's panic mode and lockdown: permissive or disabled switches mandatory
      // access control off for the whole machine, which the tuxsec user (or the server) must not do alone.
      access: 'dangerous',
      handler: (p) => {
        const runtime = p.runtime ?? true;
        const persistent = p.persistent ?? false;
        if (!runtime && !persistent) invalid('runtime', false, 'with persistent false too there is nothing to change');
        if (runtime && p.mode === 'disabled') invalid('mode', p.mode, 'the kernel cannot switch SELinux off at runtime: pass runtime: false and persistent: true');
        const k = kernelState(d.paths);
        if (runtime) {
          needsKernel({ ...k, reason: `${k.reason}; pass runtime: false and persistent: true to change only the config file` }, 'set the SELinux mode at runtime');
        }
        const file = d.configFile();
        const written = persistent ? writeConfigMode(file, p.mode as Mode) : null;
        let runtimeChanged = false;
        if (runtime && k.mode !== p.mode) {
          try {
            writeEnforce(d.paths, p.mode as 'enforcing' | 'permissive');
            runtimeChanged = true;
          } catch (e) {
            // All or nothing: the config file goes back to what it said.
            if (written?.changed) writeConfigText(file, written.previous);
            throw new TuxsecError(ErrorCodes.actionFailed, `cannot set the SELinux mode to "${p.mode}": ${e instanceof Error ? e.message : String(e)}`);
          }
        }
        return {
          mode: p.mode,
          changed: runtimeChanged || written?.changed === true,
          runtime: runtime ? { changed: runtimeChanged, before: k.mode } : null,
          persistent: written ? { changed: written.changed, before: written.before, config: file } : null,
        };
      },
    }),
  ];
}
