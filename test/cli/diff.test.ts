import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, objPath, sha } from '../helpers/expect.js';
import { commitData, editedSinceV1 as edited, v1DataManifest } from '../helpers/history.js';

/**
 * CLI layer: how `tdv diff` words its DiffResult, splits revisions from paths,
 * and its error lines, exit codes and --json, in one place. What diff finds
 * is tested through the API, in test/api/diff.test.ts.
 */
const short = (content: string) => sha(content).slice(0, 8);

describe('tdv diff: output', () => {
  it('one line per file with sizes and short hashes, then the counts', async () => {
    const { dir } = await edited();
    const r = await tdv(dir, 'diff');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      `modified:  data/a.csv  (2 B, ${short('a1')} -> 3 B, ${short('a22')})`,
      `deleted:   data/b.csv  (2 B, ${short('b1')})`,
      `added:     data/d.csv  (4 B, ${short('dddd')})`,
      `modified:  model.bin  (2 B, ${short('m1')} -> 2 B, ${short('m2')})`,
      '4 files changed between HEAD and the workspace: 1 added, 2 modified, 1 deleted.',
    ]);
    const revs = await tdv(dir, 'diff', 'v1', 'HEAD');
    expect(revs.stdout.trim()).toBe('No data changed between v1 and HEAD.');
  });

  it('--json: the DiffResult as one document', async () => {
    const { dir, v1 } = await edited();
    const r = await tdv(dir, 'diff', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ a: { rev: 'HEAD', commit: v1 }, b: {}, summary: { added: 1, modified: 2, deleted: 1 } });
  });

  it('nothing changed: "No data changed between A and B."', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data', 'model.bin']);
    expect(await tdv(dir, 'diff')).toEqual({ code: 0, stdout: 'No data changed between HEAD and the workspace.\n', stderr: '' });
    expect((await tdv(dir, 'diff', 'HEAD', 'HEAD')).stdout).toBe('No data changed between HEAD and HEAD.\n');
  });

  it('-- separates revisions from targets; a name that is both is refused as ambiguous', async () => {
    const { dir } = await edited();
    await git(dir, 'branch', 'data', 'v1');
    const r = await tdv(dir, 'diff', 'data');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '"data" is both a revision and a path', 'tdv diff data --', 'tdv diff -- data');
    const asRev = await tdv(dir, 'diff', '--json', 'data', '--');
    expect(asRev.code, asRev.stderr).toBe(0);
    expect(JSON.parse(asRev.stdout).a.rev).toBe('data');
    const asPath = await tdv(dir, 'diff', '--json', '--', 'data');
    expect(asPath.code, asPath.stderr).toBe(0);
    expect(JSON.parse(asPath.stdout).changes.map((c: { path: string }) => c.path)).toEqual(['data/a.csv', 'data/b.csv', 'data/d.csv']);
  });

  it('usage errors (exit 2): not a revision nor a path, an unknown revision, an untracked target, three revisions', async () => {
    const { dir } = await edited();
    const r = await tdv(dir, 'diff', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '"nope" is neither a revision nor a path in the workspace', 'tdv diff REV -- nope');
    const r2 = await tdv(dir, 'diff', 'nope', '--', 'data');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'unknown revision "nope"');
    write(dir, 'notes.txt', 'n');
    const r3 = await tdv(dir, 'diff', 'notes.txt');
    expect(r3.code).toBe(2);
    expectOneLineError(r3.stderr, 'notes.txt is not tracked by tdv in HEAD nor in the workspace');
    const r5 = await tdv(dir, 'diff', 'v1', 'HEAD', 'HEAD~1', '--', 'data');
    expect(r5.code).toBe(2);
    expectOneLineError(r5.stderr, 'at most two revisions before --, got 3: v1 HEAD HEAD~1');
    const r4 = await tdv(dir, 'diff', 'v1', 'HEAD', 'HEAD');
    expect(r4.code).toBe(2);
    expectOneLineError(r4.stderr, 'HEAD is not tracked by tdv in v1 nor in HEAD');
  });

  it('a missing directory manifest: exit 1, names it and the `tdv fetch` that gets it', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data']);
    const m = v1DataManifest();
    fs.rmSync(objPath(dir, m.oid));
    const r = await tdv(dir, 'diff', 'v1', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `cannot list the files of data at v1: its directory manifest ${m.oid} is not in the cache`, 'tdv fetch --rev v1 data');
  });
});
