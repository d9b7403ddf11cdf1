/**
 * Peer credentials of a Unix socket connection (SO_PEERCRED), read through libc with
 * koffi because Node has no API for it. Read once per connection, at accept time.
 */
import type net from 'node:net';
import koffi from 'koffi';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let getsockopt: ((fd: number, level: number, name: number, buf: Buffer, len: number[]) => number) | null = null;

function bind(): NonNullable<typeof getsockopt> {
  if (!getsockopt) {
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)');
  }
  return getsockopt!;
}

/** File descriptor behind a connected net.Socket (a documented-internal libuv handle field). */
function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

// One buffer for every call: the call is synchronous, so it is never shared.
const buf = Buffer.alloc(12);
const len = [12];

/** The kernel's record of who connected; null when it cannot be read (then: no access). */
export function peerCred(sock: net.Socket): PeerCred | null {
  const fd = socketFd(sock);
  if (fd < 0) return null;
  buf.fill(0);
  len[0] = 12;
  const rc = bind()(fd, SOL_SOCKET, SO_PEERCRED, buf, len);
  if (rc !== 0 || len[0] !== 12) return null;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}
