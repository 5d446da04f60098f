// Bundles the compiled CLI (dist/, from tsc) into a few files under dist/bundle/,
// which bin/tdv.js runs. Node 20 loads each ES module separately (resolve, read,
// compile, link), about a millisecond apiece on a small machine; tdv's ~50
// modules cost more than the rest of a `tdv status` on an unchanged tree.
// Dynamic imports stay lazy (code splitting), and packages stay in node_modules,
// loaded only by the commands that need them, except the two every command
// loads: commander (the CLI) and yaml (config, tdv.yaml, tdv.lock, hand-edited
// pointers). Loaded from node_modules they are 5 and 28 files; bundled, each is
// one chunk (measured: yaml's load drops from about 100 to about 40 ms of CPU on
// this 2-core machine).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

// yaml's ES module build (the same code as its CommonJS one, which Node gets by its
// "node" export condition): bundled as ESM, `await import('yaml')` keeps its named
// exports, which a bundled CommonJS module loses (esbuild gives it only a default).
const yamlEsm = path.join(path.dirname(createRequire(import.meta.url).resolve('yaml/package.json')), 'browser', 'index.js');
const yamlAsEsm = {
  name: 'yaml-esm',
  setup(b) {
    b.onResolve({ filter: /^yaml$/ }, () => ({ path: yamlEsm }));
  },
};

// valibot (the schemas of every file tdv reads) is tree-shaken to the validators tdv uses.
// @commander-js/extra-typings types commander's options from their declarations; at run
// time it is a few lines re-exporting commander's classes, bundled with commander.
const BUNDLED = new Set(['commander', '@commander-js/extra-typings', 'yaml', 'valibot']);
const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED.has(d));

await build({
  // The worker must sit beside the chunk that starts it: pool.js resolves './worker.js' against itself.
  // The reaper process (stages/reaper.ts) likewise starts 'reaper-child.js' from beside its chunk;
  // an entry of its own, it loads Node's built-ins only.
  entryPoints: { main: 'dist/cli/main.js', worker: 'dist/cache/worker.js', 'rows-worker': 'dist/cache/rows-worker.js', 'reaper-child': 'dist/stages/reaper-child.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: [...external, ...external.map((d) => `${d}/*`)],
  // Bundled CommonJS code may require() Node's built-ins: give ES module chunks a require.
  banner: { js: "import { createRequire as __tdvCreateRequire } from 'node:module';\nconst require = __tdvCreateRequire(import.meta.url);" },
  plugins: [yamlAsEsm],
  logLevel: 'warning',
});

// The web view's page assets (tdv serve, src/serve/web.ts): one script and one
// stylesheet (uPlot and its CSS included), for browsers, served from
// dist/bundle/web/; nothing comes from a CDN. Type-checked by their own
// tsconfig (lib dom), which the CLI's tsconfig leaves out.
// uPlot is MIT licensed: its copyright notice (the comment its file opens with, which
// esbuild does not count as a legal comment) heads the bundled script.
const uplotFile = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist', 'uPlot.esm.js');
const uplotNotice = /^\/\*\*[\s\S]*?\*\//.exec(fs.readFileSync(uplotFile, 'utf8'))?.[0];
if (!uplotNotice) throw new Error(`no copyright notice at the top of ${uplotFile}`);
await build({
  entryPoints: { app: 'src/serve/web/client/main.ts' },
  banner: { js: uplotNotice, css: uplotNotice },
  outdir: 'dist/bundle/web',
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  legalComments: 'inline',
  tsconfig: 'src/serve/web/client/tsconfig.json',
  logLevel: 'warning',
});
