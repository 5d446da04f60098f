import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { removeLeftovers } from '../../src/repo/lib/leftovers.js';
import { newRepo } from '../helpers/expect.js';
import { openRepo } from '../helpers/api.js';

/** A pull killed while it wrote a chunk into the download spool left its temp file there (seen once in CI). */
it("removes a dead command's temp files from the download spool (tmp/chunks/ab/), and only that command's", async () => {
  const dir = await newRepo();
  const spool = path.join(dir, '.tdv', 'tmp', 'chunks', 'ab');
  fs.mkdirSync(spool, { recursive: true });
  fs.writeFileSync(path.join(spool, '.tdvtmp.999999.0a1b'), 'partial chunk');
  fs.writeFileSync(path.join(spool, '.tdvtmp.888888.0a1b'), 'another writer');
  fs.writeFileSync(path.join(spool, 'c'.repeat(62)), 'a kept chunk');
  const { repo } = await openRepo(dir);
  expect(await removeLeftovers(repo, 999999)).toBe(1);
  expect(fs.readdirSync(spool).sort()).toEqual(['.tdvtmp.888888.0a1b', 'c'.repeat(62)]);
});
