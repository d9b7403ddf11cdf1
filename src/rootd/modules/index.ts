/**
 * The built-in modules, in registration order. Each is enabled or disabled in rootd.yaml.
 */
import type { BaseModule } from '../../sdk/base-module.ts';
import { SystemInfoModule } from './systeminfo/index.ts';
import { FirewalldModule } from './firewalld/index.ts';
import { AideModule } from './aide/index.ts';
import { ClamavModule } from './clamav/index.ts';
import { SelinuxModule } from './selinux/index.ts';

export const BUILTIN_MODULES: ReadonlyArray<() => BaseModule> = [
  () => new SystemInfoModule(),
  () => new FirewalldModule(),
  () => new SelinuxModule(),
  () => new AideModule(),
  () => new ClamavModule(),
];
