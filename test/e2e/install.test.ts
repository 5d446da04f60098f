// The README's install line, as a user on a fresh machine runs it: `npm pack`
// makes a tarball of the package, `npm install --global` of that tarball puts
// `tdv` on the PATH with its runtime dependencies only, and the installed `tdv`
// does the main job. Installs go into a temporary prefix, never the machine's.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { git, tmpDir, write } from '../helpers/repo.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const TARBALL = `${pkg.name}-${pkg.version}.tgz`;

/**
 * The environment for npm: this one without what `npm test` exports for its
 * own run (npm_config_prefix=/usr among them, which a global install would
 * otherwise write into), keeping where the cache, the registry and the user's
 * configuration are.
 */
function npmEnv(): Record<string, string | undefined> {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_registry', 'npm_config_cafile']);
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_') || keep.has(k.toLowerCase())) env[k] = v;
  return { ...env, NO_COLOR: '1' };
}

/** The packed tarball's path and its file list (`npm pack --json`). */
let packed: { tarball: string; files: string[] };

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist/bundle/main.js'))) throw new Error('dist/bundle/main.js is missing: run `npm run build` first');
  const out = tmpDir('tdv-pack-');
  // --ignore-scripts skips prepack's `npm run build`: `npm test` built dist/
  // already, and a rebuild would delete it under the tests running beside this one.
  const r = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: ROOT, env: npmEnv(), extendEnv: false, reject: false });
  if (r.exitCode !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout) as [{ filename: string; files: { path: string }[] }];
  packed = { tarball: path.join(out, info.filename), files: info.files.map((f) => f.path).sort() };
}, 120_000);

describe('install from a packed tarball', () => {
  it("README's install line names the tarball `npm pack` makes, and prepack builds it", () => {
    expect(path.basename(packed.tarball)).toBe(TARBALL);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme.split('\n').filter((l) => l.startsWith('npm pack && npm install --global '))[0]).toMatch(new RegExp(`^npm pack && npm install --global \\./${TARBALL.replace(/\./g, '\\.')}(\\s|$)`));
    expect(pkg.scripts.prepack).toBe('npm run build');
  });

  it('the tarball holds bin, the bundle and README, no sources or tests; every package the bundle imports is a runtime dependency', () => {
    expect(packed.files).toEqual(
      expect.arrayContaining(['README.md', 'bin/tdv.js', 'dist/bundle/main.js', 'dist/bundle/worker.js', 'dist/bundle/web/app.js', 'dist/bundle/web/app.css', 'package.json']),
    );
    // The web view's script and style (tdv serve) are the only files besides the CLI's chunks.
    const stray = packed.files.filter((f) => !/^(README\.md|LICENSE|package\.json|bin\/tdv\.js|dist\/bundle\/[^/]+\.js|dist\/bundle\/web\/app\.(js|css))$/.test(f));
    expect(stray).toEqual([]);
    // Bare imports in the bundle (esbuild keeps packages external): each must be
    // a Node built-in or in `dependencies`, or the installed tdv fails to load it.
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    // (The web view's script runs in the browser, with everything it uses bundled in.)
    for (const f of packed.files.filter((p) => p.startsWith('dist/bundle/') && !p.startsWith('dist/bundle/web/'))) {
      const code = fs.readFileSync(path.join(ROOT, f), 'utf8');
      for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(?:\/[\w.-]+)*)["']/g)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].filter((p) => !(p in pkg.dependencies)).sort()).toEqual([]);
  });

  it('npm install --global of the tarball gives a tdv that runs: --version, init, add, status', { timeout: 8 * 60_000 }, async () => {
    const prefix = tmpDir('tdv-prefix-');
    // --prefer-offline: packages already in the npm cache (as after `npm ci`) are not downloaded again.
    const install = await execa('npm', ['install', '--global', '--prefix', prefix, packed.tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: path.dirname(packed.tarball),
      env: npmEnv(),
      extendEnv: false,
      reject: false,
    });
    expect(install.exitCode, `npm install --global failed:\n${install.stderr}`).toBe(0);
    const installed = path.join(prefix, 'lib', 'node_modules', pkg.name);
    // Runtime dependencies only: no compiler or test runner comes along.
    for (const dev of Object.keys(pkg.devDependencies)) expect(fs.existsSync(path.join(installed, 'node_modules', dev)), dev).toBe(false);

    // The installed command, found on the PATH as a user's shell finds it.
    const env = { ...npmEnv(), PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env.PATH}` };
    const run = async (cwd: string, ...args: string[]) => {
      const r = await execa('tdv', args, { cwd, env, extendEnv: false, reject: false });
      return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    };
    const version = await run(prefix, '--version');
    expect(version).toEqual({ code: 0, stdout: pkg.version, stderr: '' });

    const repo = fs.realpathSync(tmpDir());
    await git(repo, 'init', '-q', '-b', 'main');
    expect(await run(repo, 'init', '-q')).toMatchObject({ code: 0, stderr: '' });
    write(repo, 'data/a.csv', 'a,b\n1,2\n');
    const add = await run(repo, 'add', 'data');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('Added data (1 file');
    expect(fs.existsSync(path.join(repo, 'data.tdv'))).toBe(true);
    const status = await run(repo, 'status');
    expect(status).toEqual({ code: 0, stdout: 'Data and pipelines are up to date.', stderr: '' });

    // tdv serve from the installed package: its web view's page and assets come with it.
    await git(repo, 'add', '-A');
    await git(repo, 'commit', '-qm', 'data');
    const server = execa('tdv', ['serve', '--port', '0'], { cwd: repo, env, extendEnv: false, reject: false });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        server.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = / at (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        void server.then((r) => reject(new Error(`tdv serve exited: ${r.stderr}`)));
      });
      for (const [p, type] of [
        ['/', 'text/html'],
        ['/-/assets/app.js', 'javascript'],
        ['/-/assets/app.css', 'text/css'],
        ['/main/data/a.csv', 'text/csv'],
      ] as const) {
        const res = await fetch(`${url}${p}`);
        expect(res.status, p).toBe(200);
        expect(res.headers.get('content-type'), p).toContain(type);
        if (p.endsWith('.csv')) expect(await res.text()).toBe('a,b\n1,2\n');
      }
    } finally {
      server.kill('SIGTERM');
      await server;
    }
  });
});
