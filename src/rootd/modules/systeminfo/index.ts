/**
 * systeminfo: read-only inventory of the host. Always available.
 */
import os from 'node:os';
import { ActionModule, type InitResult, type InstalledReport, type ModuleContext } from '../../../sdk/base-module.ts';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Type } from '@sinclair/typebox';
import { Params } from '../../../sdk/schema.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { MODULE_NAME_PATTERN, type ModuleInfo } from '../../../protocol/messages.ts';
import { VERSION } from '../../../version.ts';
import * as probe from './probe.ts';

const None = Params({});
const FsParams = Params({
  include_network: Type.Optional(
    Type.Boolean({ description: 'also read the usage of network filesystems (nfs, cifs, sshfs...), which can wait on a dead server (default false)' }),
  ),
});
const ModuleParams = Params({
  module: Type.String({ pattern: MODULE_NAME_PATTERN, maxLength: 64, description: 'the module whose module_info to give, e.g. "firewalld"' }),
});

export class SystemInfoModule extends ActionModule {
  private installed: () => InstalledReport = () => ({
    modules: ['systeminfo'],
    details: [{ name: 'systeminfo', source: 'builtin', loaded: true, reason: null }],
  });
  private moduleInfo: (name: string) => ModuleInfo = (name) => {
    throw new TuxsecError(ErrorCodes.moduleNotFound, `Module not found: ${name}`);
  };

  get name() {
    return 'systeminfo';
  }
  get version() {
    return VERSION;
  }
  get description() {
    return 'System information: host, OS, kernel, uptime, CPUs, memory, filesystems, network';
  }

  override async initialize(ctx?: ModuleContext): Promise<InitResult> {
    if (ctx?.installedModules) this.installed = ctx.installedModules;
    if (ctx?.moduleInfo) this.moduleInfo = ctx.moduleInfo;
    return [true, null];
  }

  /** The get_info document (INTEROP section 1), plus inventory fields. */
  async info() {
    const [fqdn, distribution, memory, boot, machine] = await Promise.all([
      probe.fqdn(),
      probe.distribution(),
      probe.memory(),
      probe.bootTime(),
      probe.machineId(),
    ]);
    const os_ = probe.osInfo();
    return {
      hostname: probe.hostname(),
      fqdn,
      os: os_,
      kernel: os_.release,
      ...probe.uptime(),
      distribution,
      runtime_version: process.version,
      agent_version: VERSION,
      cpu: probe.cpus(),
      memory,
      load_average: probe.loadAverage(),
      ...boot,
      ...machine,
    };
  }

  protected defineActions(): AnyAction[] {
    return [
      defineAction({ name: 'get_info', description: 'Get complete system information', params: None, access: 'read', shared: true, handler: () => this.info() }),
      defineAction({
        name: 'get_hostname',
        description: 'Get the hostname and FQDN',
        params: None,
        access: 'read', shared: true,
        handler: async () => ({ hostname: probe.hostname(), fqdn: await probe.fqdn() }),
      }),
      defineAction({
        name: 'get_os_info',
        description: 'Get OS and distribution information',
        params: None,
        access: 'read', shared: true,
        handler: async () => {
          const dist = await probe.distribution();
          // The Python agent's keys (docs/python-results.md): here `distribution` is the name as a
          // string, so our object, which get_info keeps under `distribution`, is `distribution_info`.
          return {
            ...probe.osInfo(),
            distribution: dist.name,
            distribution_version: dist.version,
            distribution_codename: dist.codename,
            distribution_info: dist,
          };
        },
      }),
      defineAction({
        name: 'get_kernel_version',
        description: 'Get the kernel version',
        params: None,
        access: 'read', shared: true,
        handler: () => ({ kernel_version: os.release(), kernel_build: os.version() }),
      }),
      defineAction({ name: 'get_uptime', description: 'Get system uptime', params: None, access: 'read', shared: true, handler: () => probe.uptime() }),
      defineAction({
        name: 'list_modules',
        description: 'List installed modules (built in and plugins), loaded or not, with why not',
        params: None,
        access: 'read', shared: true,
        handler: () => this.installed(),
      }),
      defineAction({
        // The module_info request as an action, so a job can carry it: the server has only jobs.
        name: 'get_module_info',
        description: "Get a module's module_info: its actions with their parameter schemas and access classes (plugins included)",
        params: ModuleParams,
        access: 'read',
        shared: true,
        handler: (p) => ({ module_info: this.moduleInfo(p.module) }),
      }),
      defineAction({ name: 'get_cpu_info', description: 'Get CPU count, model and architecture', params: None, access: 'read', shared: true, handler: () => probe.cpus() }),
      defineAction({ name: 'get_memory', description: 'Get memory and swap usage', params: None, access: 'read', shared: true, handler: () => probe.memory() }),
      defineAction({
        name: 'get_filesystems',
        description: 'Get mounted filesystems with usage',
        params: FsParams,
        access: 'read', shared: true,
        handler: async (p) => ({ filesystems: await probe.filesystems({ includeNetwork: p.include_network === true }) }),
      }),
      defineAction({
        name: 'get_network_interfaces',
        description: 'Get network interfaces with their addresses',
        params: None,
        access: 'read', shared: true,
        handler: async () => ({ interfaces: await probe.networkInterfaces() }),
      }),
      defineAction({ name: 'get_load_average', description: 'Get 1, 5 and 15 minute load averages', params: None, access: 'read', shared: true, handler: () => probe.loadAverage() }),
      defineAction({ name: 'get_boot_time', description: 'Get the boot time', params: None, access: 'read', shared: true, handler: () => probe.bootTime() }),
      defineAction({ name: 'get_machine_id', description: 'Get the machine id', params: None, access: 'read', shared: true, handler: () => probe.machineId() }),
      defineAction({
        name: 'get_inventory',
        description: 'Get the full inventory: info, filesystems and network interfaces',
        params: FsParams,
        access: 'read', shared: true,
        handler: async (p) => {
          const [info, filesystems, interfaces] = await Promise.all([
            this.info(),
            probe.filesystems({ includeNetwork: p.include_network === true }),
            probe.networkInterfaces(),
          ]);
          return { ...info, filesystems, interfaces };
        },
      }),
    ];
  }
}
