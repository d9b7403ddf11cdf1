/**
 * Ports, source ports, protocols and port forwarding of a zone.
 */
import { Type } from '@sinclair/typebox';
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { EL, toggleZoneElement, writeParams, type Deps } from './common.ts';
import { P, checkAddress, checkPort, checkPortRange, invalid } from './validate.ts';

function forwardArgs(p: { port: string; to_port?: string; to_addr?: string }): string[] {
  const { port, protocol } = checkPort('port', p.port);
  const toPort = p.to_port ? checkPortRange('to_port', p.to_port) : '';
  if (p.to_addr) checkAddress('to_addr', p.to_addr);
  if (!toPort && !p.to_addr) invalid('to_port', p.to_port ?? '', 'a forward port needs to_port, to_addr or both');
  return [port, protocol, toPort, p.to_addr ?? ''];
}

export function portActions(d: Deps): AnyAction[] {
  const zp = { zone: P.zone() };
  const portP = writeParams({ ...zp, port: P.port() }, { permanent: true });
  const protoP = writeParams({ ...zp, protocol: P.protocol() }, { permanent: true });
  const fwdP = writeParams(
    {
      ...zp,
      port: P.port(),
      to_port: Type.Optional(P.portOnly()),
      to_addr: Type.Optional(P.address()),
    },
    { permanent: true },
  );
  const port = (v: string) => {
    const x = checkPort('port', v);
    return [x.port, x.protocol];
  };
  return [
    defineAction({ name: 'add_port', description: 'Add port to zone', params: portP, access: 'write', handler: (p) => toggleZoneElement(d, EL.port, p, port(p.port), true) }),
    defineAction({ name: 'remove_port', description: 'Remove port from zone', params: portP, access: 'write', handler: (p) => toggleZoneElement(d, EL.port, p, port(p.port), false) }),
    defineAction({ name: 'add_protocol', description: 'Add protocol to zone', params: protoP, access: 'write', handler: (p) => toggleZoneElement(d, EL.protocol, p, [p.protocol], true) }),
    defineAction({ name: 'remove_protocol', description: 'Remove protocol from zone', params: protoP, access: 'write', handler: (p) => toggleZoneElement(d, EL.protocol, p, [p.protocol], false) }),
    defineAction({ name: 'add_source_port', description: 'Add source port to zone', params: portP, access: 'write', handler: (p) => toggleZoneElement(d, EL.sourcePort, p, port(p.port), true) }),
    defineAction({ name: 'remove_source_port', description: 'Remove source port from zone', params: portP, access: 'write', handler: (p) => toggleZoneElement(d, EL.sourcePort, p, port(p.port), false) }),
    defineAction({ name: 'add_forward_port', description: 'Add port forwarding rule to zone', params: fwdP, access: 'write', handler: (p) => toggleZoneElement(d, EL.forwardPort, p, forwardArgs(p), true) }),
    defineAction({ name: 'remove_forward_port', description: 'Remove port forwarding rule from zone', params: fwdP, access: 'write', handler: (p) => toggleZoneElement(d, EL.forwardPort, p, forwardArgs(p), false) }),
  ];
}
