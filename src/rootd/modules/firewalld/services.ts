/**
 * Services: the catalogue, service definitions (permanent configuration: firewalld edits
 * service definitions only there) and services enabled in a zone.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { IFACE, unwrap } from './dbus.ts';
import { EL, applyIdem, createPermanent, deletePermanent, portProtos, strs, toggleZoneElement, write, writeParams, type Deps } from './common.ts';
import { P, checkPortRange } from './validate.ts';

/** A service definition as the module returns it. */
export function serviceInfo(name: string, permanent: boolean, raw: unknown) {
  const s = (unwrap(raw) ?? {}) as Record<string, unknown>;
  return {
    name,
    permanent,
    short: String(s.short ?? ''),
    description: String(s.description ?? ''),
    ports: portProtos(s.ports),
    protocols: strs(s.protocols),
    source_ports: portProtos(s.source_ports),
    modules: strs(s.modules),
    helpers: strs(s.helpers),
    includes: strs(s.includes),
    destination: (s.destination ?? {}) as Record<string, string>,
  };
}

export async function readService(d: Deps, service: string, permanent?: boolean) {
  if (permanent) {
    const path = await d.fw.mustConfigPath('service', service);
    return serviceInfo(service, true, (await d.fw.call(path, IFACE.configService, 'getSettings2', '', [], `read service "${service}"`))[0]);
  }
  return serviceInfo(service, false, (await d.fw.rt(IFACE.main, 'getServiceSettings2', 's', [service], `read service "${service}"`))[0]);
}

/** add/remove of a port or protocol in a permanent service definition. */
function serviceElement(d: Deps, p: { service: string; dry_run?: boolean; confirm_timeout?: number }, stem: 'Port' | 'Protocol', args: string[], want: boolean) {
  const label = `${stem.toLowerCase()} "${args.join('/')}"`;
  const what = want ? `add ${label} to service "${p.service}" (permanent)` : `remove ${label} from service "${p.service}" (permanent)`;
  const sig = 's'.repeat(args.length);
  return write(
    d,
    {
      what,
      scopes: [{ kind: 'service', name: p.service }],
      check: async () => {
        const path = await d.fw.mustConfigPath('service', p.service);
        return (await d.fw.call(path, IFACE.configService, `query${stem}`, sig, args, what))[0] !== want;
      },
      apply: async () => {
        const path = await d.fw.mustConfigPath('service', p.service);
        return applyIdem(() => d.fw.call(path, IFACE.configService, `${want ? 'add' : 'remove'}${stem}`, sig, args, what));
      },
    },
    p,
  );
}

export function serviceActions(d: Deps): AnyAction[] {
  const zs = writeParams({ zone: P.zone(), service: P.service() }, { permanent: true });
  const svcPort = writeParams({ service: P.service(), port: P.portOnly(), protocol: P.portProto() });
  const svcProto = writeParams({ service: P.service(), protocol: P.protocol() });
  return [
    defineAction({
      name: 'list_services',
      description: 'List available services',
      params: Params({ permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({
        services: strs((p.permanent ? await d.fw.cfg(IFACE.config, 'getServiceNames') : await d.fw.rt(IFACE.main, 'listServices'))[0]),
      }),
    }),
    defineAction({
      name: 'list_icmptypes',
      description: 'List available ICMP types',
      params: Params({}),
      access: 'read',
      handler: async () => ({ icmptypes: strs((await d.fw.rt(IFACE.main, 'listIcmpTypes'))[0]) }),
    }),
    defineAction({ name: 'add_service', description: 'Add service to zone', params: zs, access: 'write', handler: (p) => toggleZoneElement(d, EL.service, p, [p.service], true) }),
    defineAction({ name: 'remove_service', description: 'Remove service from zone', params: zs, access: 'write', handler: (p) => toggleZoneElement(d, EL.service, p, [p.service], false) }),
    defineAction({
      name: 'get_service_info',
      description: 'Get detailed information about a service',
      params: Params({ service: P.service(), permanent: P.permanent() }),
      access: 'read',
      handler: (p) => readService(d, p.service, p.permanent),
    }),
    defineAction({
      name: 'new_service',
      description: 'Create a new custom service (permanent configuration)',
      params: writeParams({ service: P.service() }),
      access: 'write',
      handler: (p) => createPermanent(d, p, { kind: 'service', name: p.service, method: 'addService2', signature: 'sa{sv}', args: [p.service, {}] }),
    }),
    defineAction({
      name: 'delete_service',
      description: 'Delete a custom service (permanent configuration)',
      params: writeParams({ service: P.service() }),
      access: 'write',
      handler: (p) => deletePermanent(d, p, { kind: 'service', name: p.service, iface: IFACE.configService }),
    }),
    defineAction({
      name: 'service_add_port',
      description: 'Add port to a service definition',
      params: svcPort,
      access: 'write',
      handler: (p) => serviceElement(d, p, 'Port', [checkPortRange('port', p.port), p.protocol], true),
    }),
    defineAction({
      name: 'service_remove_port',
      description: 'Remove port from a service definition',
      params: svcPort,
      access: 'write',
      handler: (p) => serviceElement(d, p, 'Port', [checkPortRange('port', p.port), p.protocol], false),
    }),
    defineAction({
      name: 'service_add_protocol',
      description: 'Add protocol to a service definition',
      params: svcProto,
      access: 'write',
      handler: (p) => serviceElement(d, p, 'Protocol', [p.protocol], true),
    }),
    defineAction({
      name: 'service_remove_protocol',
      description: 'Remove protocol from a service definition',
      params: svcProto,
      access: 'write',
      handler: (p) => serviceElement(d, p, 'Protocol', [p.protocol], false),
    }),
  ];
}
