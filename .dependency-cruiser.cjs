// Layer and cycle rules (ARCHITECTURE.md "Layers"), checked by `npm run lint` on
// tsc's output in dist/: TypeScript 7 has no JS API for dependency-cruiser to
// parse the sources with, and the emitted modules keep every runtime import
// (type-only imports, which cannot form a runtime cycle, are erased).
const PLUMBING = '^dist/(workspace|cache|remote|stages|git|formats|util)/';
const COMMANDS = '^dist/repo/(?!repo\\.js$|lib/)[^/]+\\.js$';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'import cycles make load order matter and layers meaningless', from: {}, to: { circular: true } },
    {
      name: 'plumbing-stays-plumbing',
      severity: 'error',
      comment: 'plumbing never imports porcelain, presentation, commander, chalk or the ui; it reports through callbacks',
      from: { path: PLUMBING },
      to: { path: ['^dist/(repo|cli|serve|ui)/', '^node_modules/(commander|@commander-js|chalk|cli-progress)/'] },
    },
    { name: 'formats-are-leaves', severity: 'error', comment: 'a format module only parses and serialises', from: { path: '^dist/formats/' }, to: { path: '^dist/(workspace|cache|remote|stages|git|repo|cli)/' } },
    { name: 'repo-below-cli', severity: 'error', from: { path: '^dist/repo/' }, to: { path: ['^dist/(cli|serve|ui)/', '^node_modules/(commander|@commander-js|chalk|cli-progress)/'] } },
    { name: 'lib-below-commands', severity: 'error', comment: 'repo/lib helpers serve commands, never the reverse', from: { path: '^dist/repo/lib/' }, to: { path: COMMANDS } },
    {
      name: 'commands-are-independent',
      severity: 'error',
      comment: 'a command imports repo/lib and plumbing, never another command (pull composing fetch and checkout is the exception)',
      from: { path: COMMANDS, pathNot: '^dist/repo/pull\\.js$' },
      to: { path: COMMANDS },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/bundle/' },
    moduleSystems: ['es6'],
  },
};
