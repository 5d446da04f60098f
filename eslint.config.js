// Lint rules CI runs (npm test -> npm run lint). The one that matters most is
// tdv/guarded-fs: no file-system mutation outside the guarded modules.
import babelParser from '@babel/eslint-parser';

/**
 * Path-based mutations of the file system. fd-based calls (write, fchmod...)
 * need an fd, and opening one for writing is itself restricted below.
 */
const MUTATING = [
  'writeFile',
  'appendFile',
  'rename',
  'unlink',
  'rm',
  'rmdir',
  'chmod',
  'lchmod',
  'chown',
  'lchown',
  'link',
  'symlink',
  'copyFile',
  'cp',
  'mkdir',
  'mkdtemp',
  'truncate',
  'utimes',
  'lutimes',
  'createWriteStream',
].flatMap((n) => (n === 'createWriteStream' ? [n] : [n, `${n}Sync`]));
const NAMES = `/^(${MUTATING.join('|')})$/`;
const FS_MODULE = '/^(node:)?fs(\\/promises)?$/';
const why = 'use a Guard (src/workspace/guard.ts) or the object store';

/** The modules allowed to touch the file system directly: the guard and its primitives, and the object stores. */
export const GUARDED = [
  'src/workspace/guard.ts', // the guard itself
  'src/workspace/raw.ts', // its unchecked primitives, importable only from this list
  'src/workspace/link.ts', // linking cache objects to paths the guard resolved (also run in the pool's worker)
  'src/workspace/mutex.ts', // the repository lock in .tdv/tmp (a real directory, checked when the repository opens)
  'src/cache/store.ts', // the object store: the cache's own files
  'src/remote/local.ts', // the directory remote: an object store too
  'src/remote/publish.ts', // the directory remote's copy task, run on the pool's two threads
];

export const guardedFsRules = {
  'no-restricted-syntax': [
    'error',
    { selector: `CallExpression > MemberExpression.callee[object.name=/^(fs|fsp)$/][property.name=${NAMES}]`, message: `fs mutation outside the guard: ${why}` },
    { selector: `CallExpression > MemberExpression.callee[object.property.name='promises'][property.name=${NAMES}]`, message: `fs mutation outside the guard: ${why}` },
    // An open is a read when its flags are 'r', or numeric flags naming O_RDONLY and no write flag.
    {
      selector: "CallExpression[callee.object.name=/^(fs|fsp)$/][callee.property.name=/^open(Sync)?$/][arguments.length>1]:not([arguments.1.value='r']):not(:has(Identifier[name='O_RDONLY']))",
      message: `opening a file for writing outside the guard: ${why}`,
    },
    {
      selector: 'CallExpression[callee.object.name=/^(fs|fsp)$/][callee.property.name=/^open(Sync)?$/]:has(Identifier[name=/^O_(WRONLY|RDWR|CREAT|TRUNC|APPEND|EXCL)$/])',
      message: `opening a file for writing outside the guard: ${why}`,
    },
    {
      selector: `ImportDeclaration[source.value=${FS_MODULE}] > ImportSpecifier[imported.name=/^(${MUTATING.join('|')}|promises|open|openSync)$/]`,
      message: `import fs as \`fs\` and read only: ${why}`,
    },
    {
      selector: "ImportDeclaration[source.value=/^(node:)?fs$/] > :matches(ImportDefaultSpecifier, ImportNamespaceSpecifier)[local.name!='fs']",
      message: 'import node:fs as `fs`, so the guarded-fs rule sees every call',
    },
    {
      selector: "ImportDeclaration[source.value=/^(node:)?fs\\/promises$/] > :matches(ImportDefaultSpecifier, ImportNamespaceSpecifier)[local.name!='fsp']",
      message: 'import node:fs/promises as `fsp`, so the guarded-fs rule sees every call',
    },
    { selector: `ImportExpression[source.value=${FS_MODULE}]`, message: 'import node:fs statically as `fs`, so the guarded-fs rule sees every call' },
    { selector: `CallExpression[callee.name='require'][arguments.0.value=${FS_MODULE}]`, message: 'import node:fs statically as `fs`, so the guarded-fs rule sees every call' },
    { selector: 'ImportDeclaration[source.value=/workspace\\/raw\\.js$/]', message: `src/workspace/raw.ts has no path checks: ${why}` },
  ],
};

export default [
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  {
    files: ['src/**/*.ts'],
    languageOptions: {
      parser: babelParser,
      parserOptions: { requireConfigFile: false, babelOptions: { babelrc: false, configFile: false, presets: [['@babel/preset-typescript', { onlyRemoveTypeImports: true }]] } },
      sourceType: 'module',
      ecmaVersion: 2024,
    },
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    rules: guardedFsRules,
  },
  { files: GUARDED, rules: { 'no-restricted-syntax': 'off' } },
];
