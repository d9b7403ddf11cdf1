/**
 * What signatures a ClamAV database directory holds, read from the files themselves: an
 * official database (.cvd/.cld) starts with a 512-byte text header
 * `ClamAV-VDB:<built>:<version>:<signatures>:<level>:<md5>:<dsig>:<builder>:<unix time>`;
 * other signature files (.hdb, .hsb, .ndb, .ldb ...) only have their modification time.
 */
import { closeSync, lstatSync, openSync, readSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface SignatureFile {
  file: string;
  /** daily, main, bytecode, or the file's own name without extension. */
  name: string;
  /** The database version (official databases), else null. */
  version: number | null;
  signatures: number | null;
  /** When the signatures were built (official) or the file last changed (others). */
  built: string;
}

/** Extensions ClamAV loads from its database directory. */
const SIGNATURE_EXT = /\.(cvd|cld|cud|hdb|hsb|hdu|hsu|mdb|msb|mdu|msu|ndb|ndu|ldb|ldu|cdb|cbc|idb|ftm|gdb|pdb|wdb|fp|sfp|ign|ign2|crb|yar|yara|info|cat)$/;
const MAX_FILES = 1000;

function header(file: string): string | null {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, 512, 0);
    return buf.subarray(0, n).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/** The signature files in `dir`, official ones with their header's version; [] when `dir` is missing. */
export function readSignatures(dir: string): SignatureFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: SignatureFile[] = [];
  for (const n of names.filter((x) => SIGNATURE_EXT.test(x)).sort().slice(0, MAX_FILES)) {
    const file = path.join(dir, n);
    let st;
    try {
      st = lstatSync(file);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    const entry: SignatureFile = { file, name: n.replace(/\.[^.]+$/, ''), version: null, signatures: null, built: st.mtime.toISOString() };
    if (/\.(cvd|cld|cud)$/.test(n)) {
      const f = (header(file) ?? '').split(':');
      if (f[0] === 'ClamAV-VDB') {
        entry.version = /^\d+$/.test(f[2] ?? '') ? Number(f[2]) : null;
        entry.signatures = /^\d+$/.test(f[3] ?? '') ? Number(f[3]) : null;
        const stime = Number(f[8]?.trim().replace(/\0.*$/s, '').trim());
        if (Number.isFinite(stime) && stime > 0) entry.built = new Date(stime * 1000).toISOString();
      }
    }
    out.push(entry);
  }
  return out;
}
