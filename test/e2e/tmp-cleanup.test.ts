// Tests leave nothing in the temp directory. One run once left two 400 MB
// folders: directories made in beforeAll hooks were to be removed by a process
// 'exit' handler, which vitest's forked workers never run. This runs a vitest
// of its own on test/helpers/tmp-fixture/leaks.fixture.ts (directories made in
// a hook, in a test, by a test that forgets them, by a failing test) with the
// suite's clean-up, in a temp directory of its own, and looks at what is left.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/repo.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VITEST = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');

/** Runs the fixture with TMPDIR=tmp (and a clean environment: no VITEST_* of this run); returns its output. */
async function runFixture(tmp: string, env: Record<string, string> = {}) {
  const r = await execa(process.execPath, [VITEST, 'run', '--config', 'test/helpers/tmp-fixture/vitest.config.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: tmp, NO_COLOR: '1', ...env },
    extendEnv: false,
    reject: false,
    all: true,
  });
  return { code: r.exitCode, all: r.all ?? '' };
}

/** Every entry below `dir`, relative, with the random suffixes of mkdtemp names cut off. */
function entries(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = `${rel}${e.name.replace(/^(tdv-[a-z]+(?:-[a-z]+)*-)[A-Za-z0-9]{6}$/, '$1*')}`;
      out.push(r);
      if (e.isDirectory()) walk(path.join(d, e.name), `${r}/`);
    }
  };
  walk(dir, '');
  return out.sort();
}

describe('temporary directories of a test run', () => {
  it('are all removed: those of hooks after the file, a forgotten one at the end of the run, which names it', { timeout: 5 * 60_000 }, async () => {
    const tmp = fs.realpathSync(tmpDir('tdv-cleanup-test-'));
    const r = await runFixture(tmp);
    expect(r.code, r.all).toBe(0);
    expect(entries(tmp)).toEqual([]);
    expect(r.all).toMatch(/^\[tmp\] the tests left 1 entry in their temp directory \(removed now\):\n {2}tdv-fx-leak-\w{6} \(0\.0 MiB\)$/m);
  });

  it('with TDV_KEEP_TMP=1, a failed test keeps its directory and the hook directories of its file; a passed test does not', { timeout: 5 * 60_000 }, async () => {
    const tmp = fs.realpathSync(tmpDir('tdv-cleanup-test-'));
    const r = await runFixture(tmp, { TDV_KEEP_TMP: '1', FX_FAIL: '1' });
    expect(r.code, r.all).toBe(1);
    expect(entries(tmp)).toEqual(['tdv-run-*', 'tdv-run-*/tdv-fx-failed-*', 'tdv-run-*/tdv-fx-hook-*', 'tdv-run-*/tdv-fx-hook-*/big', 'tdv-run-*/tdv-fx-leak-*']);
    expect(r.all).toMatch(/^\[tmp\] TDV_KEEP_TMP=1: kept .*\/tdv-fx-failed-\w{6}$/m);
  });
});
