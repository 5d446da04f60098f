import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdv } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, newDir, newRepo, objPath, setConfig, sha } from '../helpers/expect.js';
import { appender, hasPython, holder, mmapWriter, stop } from '../helpers/writers.js';

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

const LINKED = 'cache:\n  type: hardlink\n  allow_root_links: true\n';
const isRoot = process.getuid?.() === 0;

describe('link modes that cannot corrupt the cache (issue 11, class 5)', () => {
  it('cache.type hardlink never links or chmods a file hard-linked from outside the repository: it is copied, and the outside file keeps its mode and bytes', async () => {
    const dir = await newRepo();
    setConfig(dir, LINKED);
    const outside = path.join(newDir(), 'shared.csv');
    fs.writeFileSync(outside, 'theirs\n', { mode: 0o644 });
    fs.mkdirSync(path.join(dir, 'data'));
    const inRepo = path.join(dir, 'data', 'x.csv');
    fs.linkSync(outside, inRepo);
    const r = await tdv(dir, 'add', 'data/x.csv');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const obj = objPath(dir, sha('theirs\n'));
    expect(fs.statSync(outside).mode & 0o777).toBe(0o644);
    expect(fs.statSync(obj).ino).not.toBe(fs.statSync(outside).ino);
    expect(fs.statSync(inRepo).ino).not.toBe(fs.statSync(outside).ino); // the workspace path now links the object
    expect(fs.statSync(outside).nlink).toBe(1);
    // Edit the workspace copy the way tdv says to: the outside file and the object stay as they were.
    expect((await tdv(dir, 'unprotect', 'data/x.csv')).code).toBe(0);
    fs.writeFileSync(inRepo, 'ours\n');
    expect(fs.readFileSync(outside, 'utf8')).toBe('theirs\n');
    expect(fs.statSync(outside).mode & 0o777).toBe(0o644);
    expect(fs.readFileSync(obj, 'utf8')).toBe('theirs\n');
    expectCacheTrue(dir);
  });

  it('cache.type hardlink never makes the object of a file another process holds open for writing: it is copied and left as it is', async () => {
    const dir = await newRepo();
    setConfig(dir, LINKED);
    const file = path.join(dir, 'live.log');
    fs.writeFileSync(file, 'written so far\n', { mode: 0o644 });
    const writer = await holder(file);
    try {
      const r = await tdv(dir, 'add', 'live.log');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const obj = objPath(dir, pointerOid(dir, 'live.log'));
      expect(pointerOid(dir, 'live.log')).toBe(sha('written so far\n'));
      expect(fs.statSync(obj).ino).not.toBe(fs.statSync(file).ino);
      expect(fs.statSync(file).mode & 0o777).toBe(0o644);
      // The process writes later, as it was always going to: into the workspace file, not the cache.
      const wrote = new Promise((resolve) => writer.stdout!.once('data', resolve));
      writer.kill('SIGUSR1');
      await wrote;
      expect(fs.readFileSync(file, 'utf8')).toBe('WRITTEN LATERr\n');
      expect(fs.readFileSync(obj, 'utf8')).toBe('written so far\n');
      expectCacheTrue(dir);
    } finally {
      await stop(writer);
    }
  });

  it('a hard-linked file modified in place: status reports the damaged object, and checkout never spreads its bytes to another path', async () => {
    const dir = await newRepo();
    setConfig(dir, LINKED);
    fs.writeFileSync(path.join(dir, 'a.csv'), 'same\n');
    fs.writeFileSync(path.join(dir, 'b.csv'), 'same\n');
    expect((await tdv(dir, 'add', 'a.csv', 'b.csv')).code).toBe(0);
    const oid = sha('same\n');
    expect(fs.statSync(path.join(dir, 'a.csv')).ino).toBe(fs.statSync(objPath(dir, oid)).ino);
    fs.rmSync(path.join(dir, 'b.csv'));
    // Written in place through the workspace link: root ignores 0444; an owner can chmod it first.
    fs.chmodSync(path.join(dir, 'a.csv'), 0o644);
    fs.writeFileSync(path.join(dir, 'a.csv'), 'altered in place\n');
    expect(fs.readFileSync(objPath(dir, oid), 'utf8')).toBe('altered in place\n'); // the cache's copy went with it

    // Checked before linking: a checkout of b.csv alone refuses the damaged object.
    const co = await tdv(dir, 'checkout', 'b.csv');
    expect(co.code).toBe(1);
    expectOneLineError(co.stderr, 'no longer matches its name', 'tdv fsck');
    expect(fs.existsSync(path.join(dir, 'b.csv'))).toBe(false);

    const st = await tdv(dir, 'status');
    expect(st.stderr).toContain('a.csv was modified in place and its cache object');
    expect(st.stderr).toContain('tdv add a.csv');
    expect(st.stdout).toContain('a.csv');
    expect(fs.existsSync(objPath(dir, oid))).toBe(false); // quarantined: never linked again
    expect(fs.readFileSync(path.join(dir, 'a.csv'), 'utf8')).toBe('altered in place\n'); // the edit is kept

    const all = await tdv(dir, 'checkout', 'b.csv');
    expect(all.code).toBe(1);
    expect(all.stderr).toContain('tdv pull');
    expect(fs.existsSync(path.join(dir, 'b.csv'))).toBe(false);
    expectCacheTrue(dir);
  });

  it.runIf(isRoot)('as root, cache.type hardlink without allow_root_links copies instead, saying so once', async () => {
    const dir = await newRepo();
    setConfig(dir, 'cache:\n  type: hardlink\n');
    fs.mkdirSync(path.join(dir, 'data'));
    for (const n of ['a', 'b', 'c']) fs.writeFileSync(path.join(dir, 'data', n), n);
    const r = await tdv(dir, 'add', 'data');
    expect(r.code).toBe(0);
    expect(r.stderr.match(/running as root/g)).toHaveLength(1);
    expect(r.stderr).toContain('cache.allow_root_links: true');
    for (const n of ['a', 'b', 'c']) {
      const f = path.join(dir, 'data', n);
      expect(fs.statSync(f).nlink).toBe(1);
      expect(fs.statSync(f).ino).not.toBe(fs.statSync(objPath(dir, sha(n))).ino);
    }
    // A checkout after deleting a file writes a copy too.
    fs.rmSync(path.join(dir, 'data', 'a'));
    const co = await tdv(dir, 'checkout');
    expect(co.code).toBe(0);
    expect(co.stderr.match(/running as root/g)).toHaveLength(1);
    expect(fs.statSync(path.join(dir, 'data', 'a')).nlink).toBe(1);
  });
});
