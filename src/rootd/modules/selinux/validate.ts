/**
 * Parameter schemas of the selinux module. Every name pattern starts with a letter or "/", so no
 * value can look like an option of semanage, setsebool or restorecon; the values still go after
 * "--" where the program takes it.
 */
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { P as FW, invalid } from '../firewalld/validate.ts';

/** semanage fcontext's file types (`-f`), by the letter semanage takes. */
export const FTYPES = {
  a: 'all files',
  f: 'regular file',
  d: 'directory',
  c: 'character device',
  b: 'block device',
  s: 'socket',
  l: 'symbolic link',
  p: 'named pipe',
} as const;
export type FtypeLetter = keyof typeof FTYPES;

const MLS_LEVEL = 's[0-9]{1,4}(:c[0-9]{1,4}([.,]c[0-9]{1,4}){0,63})?';

export const P = {
  type: (what = 'SELinux type') =>
    Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,127}$', maxLength: 128, description: `${what}: letters, digits and "_", starting with a letter, e.g. "httpd_sys_content_t"` }),
  boolean: () =>
    Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,127}$', maxLength: 128, description: 'SELinux boolean name: letters, digits and "_", e.g. "httpd_can_network_connect"' }),
  port: FW.portOnly,
  protocol: FW.portProto,
  // A file_contexts line is "spec [type] context" split on white space, so a spec never holds any.
  fileSpec: () =>
    Type.String({
      pattern: '^/[^\\u0000-\\u0020\\u007f]{0,1023}$',
      maxLength: 1024,
      description: 'file context specification: an absolute path or regular expression starting with "/", no white space or control characters, at most 1024 characters, e.g. "/srv/www(/.*)?"',
    }),
  ftype: () =>
    Type.Union(
      Object.keys(FTYPES).map((k) => Type.Literal(k)),
      { description: `file type: ${Object.entries(FTYPES).map(([k, v]) => `${k} (${v})`).join(', ')}` },
    ),
  range: () => Type.String({ pattern: `^${MLS_LEVEL}(-${MLS_LEVEL})?$`, maxLength: 256, description: 'MLS/MCS range, e.g. "s0" or "s0-s0:c0.c1023"' }),
  path: () =>
    Type.String({ pattern: '^/[^\\u0000-\\u001f\\u007f]{0,4095}$', maxLength: 4096, description: 'absolute path, no control characters, no "." or ".." components' }),
  filter: () => Type.String({ pattern: '^[^\\u0000-\\u001f\\u007f]{1,256}$', maxLength: 256, description: 'only entries whose text contains this' }),
  limit: () => Type.Integer({ minimum: 1, maximum: 10_000, description: 'most entries returned (default 1000)' }),
  localOnly: () => Type.Boolean({ description: 'only the local customizations (semanage -C), not the policy\'s own (default false)' }),
};

/** Refuses a path with "." or ".." components or repeated slashes: what restorecon acts on is the path as given. */
export function checkPath(param: string, value: string): string {
  if (value !== '/' && path.posix.normalize(value).replace(/\/$/, '') !== value.replace(/\/$/, '')) {
    invalid(param, value, 'the path must be normalized (no "." or ".." components, no "//")');
  }
  return value;
}
