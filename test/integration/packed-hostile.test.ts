import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { git, tdv } from '../helpers/repo.js';
import { expectOneLineError, newDir, sampleRepo } from '../helpers/expect.js';

/**
 * A hostile packed remote (README "Remote layout") against the real bin/tdv:
 * what it may make tdv allocate, and how its damage is reported.
 */
async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

/** Writes `json` gzipped as an index under its own name (so its name checks out). */
function plantIndex(remote: string, json: string): string {
  const gz = zlib.gzipSync(json, { level: 9 });
  const name = createHash('sha256').update(gz).digest('hex');
  fs.writeFileSync(path.join(remote, 'index', `${name}.json.gz`), gz);
  return name;
}

describe('hostile packed remote', () => {
  it('an index that gunzips to far more than an index of its size can hold (a gzip bomb) is refused unparsed, in one line', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    // 1,000 copies of one row compress about 200:1; a real index (hex ids) about 2:1.
    const row = `["${'a'.repeat(64)}","o",0,8,0,0,"n"]`;
    const name = plantIndex(remote, `{"format":"tdv-index","version":1,"written":1,"packs":["${'b'.repeat(64)}"],"blobs":[${Array(200_000).fill(row).join(',')}]}`);
    expect(fs.statSync(path.join(remote, 'index', `${name}.json.gz`)).size).toBeLessThan(100_000);
    const b = await clone(dir);
    const r = await tdv(b, 'pull');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `index/${name}.json.gz is damaged`, 'more than');
  });
});
