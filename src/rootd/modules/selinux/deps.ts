/**
 * What every action group of the selinux module gets: the programs, the kernel's files and the
 * settings from rootd.yaml.
 */
import type { Tools } from './semanage.ts';
import type { HostPaths } from './state.ts';

export interface Deps {
  tools: Tools;
  paths: HostPaths;
  /** settings.config: the file SELINUX= is read from and written to. */
  configFile: () => string;
  /** settings.store: the policy store semanage manages, null for the configured one. */
  store: () => string | null;
  exists: (file: string) => boolean;
}
