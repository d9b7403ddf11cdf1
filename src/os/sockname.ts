/**
 * The path a Unix socket is bound to (getsockname), read through libc with koffi: Node's
 * server.address() is null for a socket it took over by fd (systemd socket activation).
 */
import koffi from 'koffi';

const AF_UNIX = 1;
/** sa_family_t, then sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;

let getsockname: ((fd: number, addr: Buffer, len: number[]) => number) | null = null;

function bind(): NonNullable<typeof getsockname> {
  getsockname ??= koffi.load('libc.so.6').func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)');
  return getsockname!;
}

/** The file system path of a bound Unix socket, or null (not Unix, abstract, unnamed, error). */
export function boundSocketPath(fd: number): string | null {
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  const len = [SOCKADDR_UN_SIZE];
  if (bind()(fd, addr, len) !== 0) return null;
  if (addr.readUInt16LE(0) !== AF_UNIX || len[0]! <= 2 || addr[2] === 0) return null;
  const end = addr.indexOf(0, 2);
  return addr.subarray(2, end < 0 ? Math.min(len[0]!, SOCKADDR_UN_SIZE) : end).toString('utf8');
}
