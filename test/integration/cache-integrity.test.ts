import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdv } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, newRepo, objPath, sha } from '../helpers/expect.js';
import { appender, hasPython, mmapWriter, stop } from '../helpers/writers.js';

/** The oid a single-file pointer records. */
function pointerOid(dir: string, rel: string): string {
  const m = /sha256: ([0-9a-f]{64})/.exec(fs.readFileSync(path.join(dir, `${rel}.tdv`), 'utf8'));
  if (!m) throw new Error(`no oid in ${rel}.tdv`);
  return m[1]!;
}

/** Every object in the cache hashes to its own name. */
function expectCacheTrue(dir: string): void {
  for (const oid of cacheObjects(dir)) expect(sha(fs.readFileSync(objPath(dir, oid)))).toBe(oid);
}

describe('what is cached is what was hashed (issue 11, class 4)', () => {
  it('tdv add of a file another process keeps appending to: a one-line error and no pointer, or a pointer to a true prefix of it', async () => {
    const dir = await newRepo();
    const outcomes: string[] = [];
    // A small file (read in one call) and one larger than a chunk (streamed and copied).
    for (const [i, start] of [randomBytes(100), randomBytes(3 << 20), randomBytes(3 << 20)].entries()) {
      const rel = `log${i}.txt`;
      const file = path.join(dir, rel);
      fs.writeFileSync(file, start);
      const writer = await appender(file);
      let r;
      try {
        r = await tdv(dir, 'add', rel);
      } finally {
        await stop(writer);
      }
      const final = fs.readFileSync(file);
      if (r.code === 0) {
        outcomes.push('added');
        const oid = pointerOid(dir, rel);
        const bytes = fs.readFileSync(objPath(dir, oid));
        expect(sha(bytes)).toBe(oid);
        expect(final.subarray(0, bytes.length).equals(bytes)).toBe(true);
      } else {
        outcomes.push('refused');
        expect(r.code).toBe(1);
        expectOneLineError(r.stderr, `${rel} changed while it was being added; run the command again when nothing writes to it`);
        expect(fs.existsSync(`${file}.tdv`)).toBe(false);
      }
      expectCacheTrue(dir);
    }
    expect(outcomes).toHaveLength(3);
  });

  it.skipIf(!hasPython)('tdv add of a file rewritten through a shared mapping (no stat change) stores only objects true to their names', async () => {
    const dir = await newRepo();
    const file = path.join(dir, 'mapped.bin');
    fs.writeFileSync(file, randomBytes(8 << 20));
    const writer = await mmapWriter(file);
    try {
      for (let round = 0; round < 3; round++) {
        const r = await tdv(dir, 'add', 'mapped.bin');
        if (r.code === 0) expect(sha(fs.readFileSync(objPath(dir, pointerOid(dir, 'mapped.bin'))))).toBe(pointerOid(dir, 'mapped.bin'));
        else expectOneLineError(r.stderr, 'mapped.bin changed while it was being added');
        expectCacheTrue(dir);
      }
    } finally {
      await stop(writer);
    }
  });
});
