/**
 * Ports, source ports, protocols and port forwarding of a zone.
 */
import { Type } from '@sinclair/typebox';
import type { AnyAction } from '../../../sdk/action.ts';
import { EL, zonePair, type Deps } from './common.ts';
import { P, checkAddress, checkPort, checkPortRange, invalid } from './validate.ts';

function forwardArgs(p: { port: string; to_port?: string; to_addr?: string }): string[] {
  const { port, protocol } = checkPort('port', p.port);
  const toPort = p.to_port ? checkPortRange('to_port', p.to_port) : '';
  if (p.to_addr) checkAddress('to_addr', p.to_addr);
  if (!toPort && !p.to_addr) invalid('to_port', p.to_port ?? '', 'a forward port needs to_port, to_addr or both');
  return [port, protocol, toPort, p.to_addr ?? ''];
}

export function portActions(d: Deps): AnyAction[] {
  const port = (p: { port: string }) => {
    const x = checkPort('port', p.port);
    return [x.port, x.protocol];
  };
  const fwd = { port: P.port(), to_port: Type.Optional(P.portOnly()), to_addr: Type.Optional(P.address()) };
  return [
    ...zonePair(d, EL.port, { add: ['add_port', 'Add port to zone'], remove: ['remove_port', 'Remove port from zone'] }, { port: P.port() }, port),
    ...zonePair(d, EL.protocol, { add: ['add_protocol', 'Add protocol to zone'], remove: ['remove_protocol', 'Remove protocol from zone'] }, { protocol: P.protocol() }, (p) => [p.protocol]),
    ...zonePair(d, EL.sourcePort, { add: ['add_source_port', 'Add source port to zone'], remove: ['remove_source_port', 'Remove source port from zone'] }, { port: P.port() }, port),
    ...zonePair(d, EL.forwardPort, { add: ['add_forward_port', 'Add port forwarding rule to zone'], remove: ['remove_forward_port', 'Remove port forwarding rule from zone'] }, fwd, forwardArgs),
  ];
}
