// Bundles each program into one file under dist/ so an installed copy needs only Node
// plus dist/ and the two native packages (koffi, better-sqlite3), never npm.
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { buildConsole } from './build-console.mjs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

// tuxsec-cli and tuxsec-shell are CommonJS (dist/*.cjs): they start for every SSH-mode call,
// and loading them without the ES module loader saves about 10 ms a call.
const CJS = { 'tuxsec-cli': 'src/cli/main.ts', 'tuxsec-cli-doctor': 'src/cli/doctor.ts', 'tuxsec-shell': 'src/shell/main.ts' };
const entries = {
  'tuxsec-rootd': 'src/rootd/main.ts',
  'tuxsec-agent': 'src/agent/main.ts',
  'tuxsec-server': 'src/server/main.ts',
  'tuxsec-server-serve': 'src/server/serve.ts',
  sdk: 'src/sdk/index.ts',
};

// tuxsec-server's operator commands start a process per call: its bundle holds only them, and
// `serve` loads the server (fastify, SQLite, pino) from its own bundle beside it when it runs.
const serveApart = {
  name: 'serve-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/serve\.ts$/ }, (args) =>
      args.importer.endsWith('src/server/main.ts') && args.kind === 'dynamic-import' ? { path: './tuxsec-server-serve.js', external: true } : undefined,
    );
  },
};

// `tuxsec-cli doctor` needs YAML, the config schemas and HTTPS: main.ts loads it from its own
// bundle when it runs, so the CLI's other commands start as fast as before.
const doctorApart = {
  name: 'doctor-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/doctor\.ts$/ }, (args) =>
      args.importer.endsWith('src/cli/main.ts') && args.kind === 'dynamic-import' ? { path: './tuxsec-cli-doctor.cjs', external: true } : undefined,
    );
  },
};

// Build into a private folder, then rename each file into dist/: a program already
// running from dist/ (or a concurrent build) never sees a half-written or missing file.
const tmp = `dist/.build-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
const entryPoints = Object.fromEntries(Object.entries(entries).filter(([, f]) => existsSync(f)));
await build({
  entryPoints,
  outdir: tmp,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  splitting: false,
  // Lean bundles; identifiers are not minified, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  legalComments: 'none',
  // Native addons stay outside the bundle; they ship their own binaries.
  // x11 is dbus-next's optional X11 session-bus discovery, never used by a system service.
  external: ['koffi', 'better-sqlite3', 'usocket', 'x11'],
  // Bundled CommonJS dependencies may call require(); give ESM output one.
  banner: { js: "import { createRequire as __tsxCreateRequire } from 'node:module'; const require = __tsxCreateRequire(import.meta.url);" },
  define: { __TUXSEC_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
  plugins: [serveApart],
});
await build({
  entryPoints: CJS,
  outdir: tmp,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  define: { __TUXSEC_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
  // koffi: tuxsec-shell's job form locks the agent's journal (src/os/file-lock.ts).
  external: ['koffi'],
  plugins: [doctorApart],
});
// The web console is a folder: built beside, then swapped in with two renames.
const consoleSize = await buildConsole(`${tmp}/console`);
for (const f of readdirSync(tmp)) {
  if (f === 'console') continue;
  renameSync(`${tmp}/${f}`, `dist/${f}`);
}
const oldConsole = `dist/.console-old-${process.pid}`;
if (existsSync('dist/console')) renameSync('dist/console', oldConsole);
renameSync(`${tmp}/console`, 'dist/console');
rmSync(oldConsole, { recursive: true, force: true });
rmSync(tmp, { recursive: true, force: true });
console.log(`built ${[...Object.keys(entryPoints), ...Object.keys(CJS)].join(', ')} into dist/`);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`built the web console into dist/console/: ${consoleSize.js}, ${consoleSize.css}: ${kb(consoleSize.raw)} minified, ${kb(consoleSize.brotli)} brotli (budget 150 KB)`);
