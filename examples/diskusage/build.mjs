// Builds the diskusage plugin into one ES module that rootd can load from plugins_dir:
//   node examples/diskusage/build.mjs [--sdk /usr/lib/tuxsec/sdk.js] [--out diskusage.mjs]
// The plugin's own code is bundled; `tuxsec-agent/sdk` is not: it becomes an import of the SDK
// tuxsec-rootd installed (--sdk), so the plugin shares the daemon's classes and error codes.
import { build } from 'esbuild';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    sdk: { type: 'string', default: '/usr/lib/tuxsec/sdk.js' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'diskusage.mjs') },
  },
});
if (!path.isAbsolute(values.sdk)) {
  console.error(`cannot build the diskusage plugin: --sdk ${JSON.stringify(values.sdk)} is not an absolute path`);
  process.exit(2);
}

const installedSdk = {
  name: 'installed-sdk',
  setup(b) {
    b.onResolve({ filter: /^tuxsec-agent\/sdk$/ }, () => ({ path: values.sdk, external: true }));
  },
};

await build({
  entryPoints: [path.join(import.meta.dirname, 'diskusage.ts')],
  outfile: values.out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [installedSdk],
});
console.log(`built ${values.out} (SDK: ${values.sdk})`);
