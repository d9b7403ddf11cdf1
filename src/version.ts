/** The version of all TuxSec programs, from package.json at build time. */
declare const __TUXSEC_VERSION__: string | undefined;
export const VERSION: string = typeof __TUXSEC_VERSION__ === 'string' ? __TUXSEC_VERSION__ : '0.1.0-dev';
