/**
 * Services: the catalogue, service definitions (permanent configuration: firewalld edits
 * service definitions only there) and services enabled in a zone.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { IFACE } from './dbus.ts';
import { EL, applyIdem, createDelete, reader, write, writeParams, zonePair, type Deps } from './common.ts';
import { ICMPTYPE, SERVICE, info, listNames, readSettings } from './objects.ts';
import { R } from './signature.ts';
import { P, checkPortRange } from './validate.ts';

/** A service definition as the module returns it. */
export async function readService(d: Deps, service: string, permanent?: boolean) {
  const raw = await readSettings(d.fw, SERVICE, service, permanent);
  // info() builds exactly the fields of SERVICE_INFO.
  return info(SERVICE, service, permanent === true, raw) as { name: string; helpers: string[] };
}

/** add/remove of a port or protocol in a permanent service definition. */
function serviceElement(d: Deps, p: { service: string; dry_run?: boolean; confirm_timeout?: number }, stem: 'Port' | 'Protocol', args: string[], want: boolean) {
  const label = `${stem.toLowerCase()} "${args.join('/')}"`;
  const what = want ? `add ${label} to service "${p.service}" (permanent)` : `remove ${label} from service "${p.service}" (permanent)`;
  const on = async (member: string) => ({ path: await d.fw.mustConfigPath('service', p.service), iface: IFACE.configService, member, signature: 's'.repeat(args.length), body: args, what });
  return write(
    d,
    {
      what,
      scopes: [{ kind: 'service', name: p.service }],
      check: async () => (await d.fw.get(await on(`query${stem}`), R.bool)) !== want,
      apply: async () => {
        const c = await on(`${want ? 'add' : 'remove'}${stem}`);
        return applyIdem(() => d.fw.call(c));
      },
    },
    p,
  );
}

export function serviceActions(d: Deps): AnyAction[] {
  const svcPort = writeParams({ service: P.service(), port: P.portOnly(), protocol: P.portProto() });
  const svcProto = writeParams({ service: P.service(), protocol: P.protocol() });
  const svc = { service: P.service() };
  return [
    reader('list_services', 'List available services', { permanent: P.permanent() }, async (p) => ({ services: await listNames(d.fw, SERVICE, p.permanent) })),
    reader('list_icmptypes', 'List available ICMP types', {}, async () => ({ icmptypes: await listNames(d.fw, ICMPTYPE) })),
    ...zonePair(d, EL.service, { add: ['add_service', 'Add service to zone'], remove: ['remove_service', 'Remove service from zone'] }, svc, (p) => [p.service]),
    reader('get_service_info', 'Get detailed information about a service', { ...svc, permanent: P.permanent() }, (p) => readService(d, p.service, p.permanent)),
    ...createDelete(d, SERVICE, {
      create: ['new_service', 'Create a new custom service (permanent configuration)', svc],
      delete: ['delete_service', 'Delete a custom service (permanent configuration)', svc],
    }),
    defineAction({ name: 'service_add_port', description: 'Add port to a service definition', params: svcPort, access: 'write', handler: (p) => serviceElement(d, p, 'Port', [checkPortRange('port', p.port), p.protocol], true) }),
    defineAction({ name: 'service_remove_port', description: 'Remove port from a service definition', params: svcPort, access: 'write', handler: (p) => serviceElement(d, p, 'Port', [checkPortRange('port', p.port), p.protocol], false) }),
    defineAction({ name: 'service_add_protocol', description: 'Add protocol to a service definition', params: svcProto, access: 'write', handler: (p) => serviceElement(d, p, 'Protocol', [p.protocol], true) }),
    defineAction({ name: 'service_remove_protocol', description: 'Remove protocol from a service definition', params: svcProto, access: 'write', handler: (p) => serviceElement(d, p, 'Protocol', [p.protocol], false) }),
  ];
}
