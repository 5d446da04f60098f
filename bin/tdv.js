#!/usr/bin/env node
// Libraries' runtime warnings (deprecations, Node version notices) are not tdv's
// output: they would break one-line errors and --json consumers. -v shows them.
process.removeAllListeners('warning');
const verbose = process.argv.includes('-v') || process.argv.includes('--verbose');
process.on('warning', (w) => {
  if (verbose) process.stderr.write(`debug: ${w.name}: ${w.message.split('\n')[0]}\n`);
});

const { main } = await import('../dist/bundle/main.js');
process.exitCode = await main(process.argv);
