// README's first command is `npm ci && npm run demo`: the demo must run the
// main job end to end on embedded defaults (add, checkout, push and pull with
// a directory remote, a pipeline, history). It once stopped at its last step,
// a `checkout --to` into the repository, which tdv had learned to refuse.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { tmpDir } from '../helpers/repo.js';

const DEMO = path.resolve(import.meta.dirname, '../../scripts/demo.mjs');

it('npm run demo walks through the main job to the end, and leaves its directories only in the temp dir', { timeout: 5 * 60_000 }, async () => {
  // The demo keeps its repository, clone, snapshot and remote for the user to
  // look at, in the temp directory: this test gives it one of its own.
  const tmp = fs.realpathSync(tmpDir('tdv-demo-test-'));
  // `node scripts/demo.mjs`, not `npm run demo`, which rebuilds dist/ under the tests running beside this one.
  const r = await execa(process.execPath, [DEMO], { env: { TMPDIR: tmp, NO_COLOR: '1' }, reject: false, all: true });
  expect(r.exitCode, r.all).toBe(0);
  // The one error is the demo's point: checkout refuses to discard an edit that exists nowhere else.
  const errors = r.all!.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toContain('would be lost');
  expect(r.stdout).toContain('# Done.');
  // The last step: the data of v1 beside today's, outside the repository.
  const [repo] = fs.readdirSync(tmp).filter((n) => /^tdv-demo-[^-]+$/.test(n));
  expect(repo).toBeDefined();
  expect(fs.readFileSync(path.join(tmp, `${repo}-snapshot-v1`, 'out', 'sales.csv'), 'utf8')).toMatch(/^\S/);
  expect(fs.existsSync(path.join(tmp, repo!, `snapshot-v1`))).toBe(false);
});
