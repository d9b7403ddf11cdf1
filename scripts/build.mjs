// Bundles each program into one file under dist/ so an installed copy needs only Node
// plus dist/ and the two native packages (koffi, better-sqlite3), never npm.
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

const entries = {
  'tuxsec-rootd': 'src/rootd/main.ts',
  'tuxsec-cli': 'src/cli/main.ts',
  'tuxsec-agent': 'src/agent/main.ts',
  'tuxsec-server': 'src/server/main.ts',
  'tuxsec-shell': 'src/shell/main.ts',
  sdk: 'src/sdk/index.ts',
};

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
const entryPoints = Object.fromEntries(Object.entries(entries).filter(([, f]) => existsSync(f)));
await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  splitting: false,
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  // Native addons stay outside the bundle; they ship their own binaries.
  external: ['koffi', 'better-sqlite3', 'usocket'],
  // Bundled CommonJS dependencies may call require(); give ESM output one.
  banner: { js: "import { createRequire as __tsxCreateRequire } from 'node:module'; const require = __tsxCreateRequire(import.meta.url);" },
  define: { __TUXSEC_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
console.log(`built ${Object.keys(entryPoints).join(', ')} into dist/`);
