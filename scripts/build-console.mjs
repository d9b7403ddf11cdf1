// Builds the web console (console/src, Preact + TSX) into `out`: one minified script and one
// style sheet with content-hashed names under assets/, an index.html naming them, and a .br and
// a .gz copy beside each file so the server sends them without compressing per request.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

/** Most bytes of JavaScript and CSS (compressed with brotli) a browser may be sent (issue 11). */
export const CONSOLE_BUDGET_BYTES = 150 * 1024;

const COMPRESSED = /\.(js|css|html|svg|json)$/;

function compressBeside(file) {
  const data = readFileSync(file);
  const br = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } });
  writeFileSync(`${file}.br`, br);
  writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }));
  return { raw: data.length, br: br.length };
}

/**
 * The page: no inline script or style (the CSP forbids both), the favicon a data: URL so the
 * browser asks this server for nothing else.
 */
function indexHtml(js, css) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>TuxSec console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${css}">
<script type="module" src="/assets/${js}"></script>
</head>
<body>
<div id="app"><noscript>The TuxSec console needs JavaScript.</noscript></div>
</body>
</html>
`;
}

/** Builds the console into `out` (an empty folder); returns the sizes it measured. */
export async function buildConsole(out, { entry = 'console/src/main.tsx' } = {}) {
  const assets = path.join(out, 'assets');
  mkdirSync(assets, { recursive: true });
  const result = await build({
    entryPoints: { app: entry },
    outdir: assets,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    minify: true,
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
  });
  const files = Object.keys(result.metafile.outputs).map((f) => path.basename(f));
  const js = files.find((f) => f.endsWith('.js'));
  const css = files.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`cannot build the console: esbuild made ${files.join(', ')}, not one .js and one .css`);
  writeFileSync(path.join(out, 'index.html'), indexHtml(js, css));
  let shipped = 0;
  let raw = 0;
  for (const f of readdirSync(assets)) {
    const p = path.join(assets, f);
    if (!statSync(p).isFile() || !COMPRESSED.test(f)) continue;
    const s = compressBeside(p);
    shipped += s.br;
    raw += s.raw;
  }
  compressBeside(path.join(out, 'index.html'));
  if (shipped > CONSOLE_BUDGET_BYTES) {
    throw new Error(`cannot build the console: its JavaScript and CSS are ${shipped} bytes compressed, over the budget of ${CONSOLE_BUDGET_BYTES}`);
  }
  return { js, css, raw, brotli: shipped };
}
