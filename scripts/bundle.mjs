// Bundles the compiled CLI (dist/, from tsc) into a few files under dist/bundle/,
// which bin/tdv.js runs. Node 20 loads each ES module separately (resolve, read,
// compile, link), about a millisecond apiece on a small machine; tdv's ~50
// modules cost more than the rest of a `tdv status` on an unchanged tree.
// Dynamic imports stay lazy (code splitting), and packages stay in node_modules,
// loaded only by the commands that need them.
import { build } from 'esbuild';

await build({
  // The worker must sit beside the chunk that starts it: pool.js resolves './worker.js' against itself.
  entryPoints: { main: 'dist/cli/main.js', worker: 'dist/cache/worker.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
