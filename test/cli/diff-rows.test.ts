import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { git, makeRepo, TDV_BIN, tdv } from '../helpers/repo.js';
import { expectOneLineError, objPath, sha } from '../helpers/expect.js';

/**
 * CLI layer: `tdv diff --rows` in a real Git repository, with a tracked CSV
 * at two revisions and in the workspace: its rendering, --json, the errors
 * and exit codes. What the engine finds in edge cases: test/unit/rows.test.ts.
 */

/** Replaces a file (never writing through a link into the cache). */
function put(dir: string, rel: string, content: string): void {
  const p = path.join(dir, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.rmSync(p, { force: true });
  fs.writeFileSync(p, content);
}

const V1 = 'id,name,price\n1,apple,3\n2,pear,4\n3,"fig, dried",5\n4,kiwi,6\n';
const V2 = 'id,name,price\n1,apple,3\n2,pear,40\n3,"fig, dried",5\n5,plum,7\n';
const WS = 'id,name,price,color\n1,apple,3,red\n2,pear,41,green\n5,plum,7,blue\n6,lime,1,green\n7,"a ""b""",2,x\n';

async function tables(): Promise<string> {
  const dir = await makeRepo();
  put(dir, 'data/t.csv', V1);
  put(dir, 'git.csv', 'k,v\n1,a\n');
  expect((await tdv(dir, 'add', '-q', 'data/t.csv')).code).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'v1');
  await git(dir, 'tag', 'v1');
  put(dir, 'data/t.csv', V2);
  put(dir, 'git.csv', 'k,v\n1,b\n2,c\n');
  expect((await tdv(dir, 'add', '-q', 'data/t.csv')).code).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'v2');
  put(dir, 'data/t.csv', WS);
  return dir;
}

const leftovers = (dir: string) => fs.readdirSync(path.join(dir, '.tdv/tmp')).filter((n) => n.startsWith('rows.'));

describe('tdv diff --rows', () => {
  it('HEAD against the workspace: the summary first, then added, removed and changed rows with their cells', async () => {
    const dir = await tables();
    const r = await tdv(dir, 'diff', '--rows', 'data/t.csv', '--key', 'id');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'Rows of data/t.csv between HEAD and the workspace (by id): 2 added, 1 removed, 1 changed, 2 unchanged.',
      'Columns added color (cells are compared by column name).',
      '',
      'added:',
      '  + line 5: id=6, name=lime, price=1, color=green',
      '  + line 6: id=7, name="a \\"b\\"", price=2, color=x',
      '',
      'removed:',
      '  - line 4: id=3, name="fig, dried", price=5',
      '',
      'changed:',
      '  ~ id=2 (line 3 -> 3): price: 40 -> 41',
      '',
    ]);
    expect(leftovers(dir)).toEqual([]);
    // What a killed run left (its pid gone) is removed by the next one; another live process's is not.
    fs.mkdirSync(path.join(dir, '.tdv/tmp/rows.999999999.01abcdef00'));
    fs.mkdirSync(path.join(dir, `.tdv/tmp/rows.${process.ppid}.01abcdef00`));
    expect((await tdv(dir, 'diff', '--rows', 'data/t.csv')).code).toBe(0);
    expect(leftovers(dir)).toEqual([`rows.${process.ppid}.01abcdef00`]);
    fs.rmdirSync(path.join(dir, `.tdv/tmp/rows.${process.ppid}.01abcdef00`));
    const limited = await tdv(dir, 'diff', '--rows', 'data/t.csv', '--key', 'id', '--limit', '1');
    expect(limited.stdout).toContain('  + line 5: id=6, name=lime, price=1, color=green\n  ... 1 more; --limit 0 or --json for all\n');
  });

  it('two revisions, --json: the whole document (schema in README)', async () => {
    const dir = await tables();
    const r = await tdv(dir, 'diff', '--rows', 'v1', 'HEAD', 'data/t.csv', '--key', 'id', '--json');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toEqual({
      path: 'data/t.csv',
      format: 'csv',
      key: ['id'],
      a: { rev: 'v1', commit: expect.stringMatching(/^[0-9a-f]{40}$/) },
      b: { rev: 'HEAD', commit: expect.stringMatching(/^[0-9a-f]{40}$/) },
      columns: { a: ['id', 'name', 'price'], b: ['id', 'name', 'price'], added: [], removed: [] },
      summary: { added: 1, removed: 1, changed: 1, unchanged: 2, duplicateKeys: { a: 0, b: 0 } },
      added: [{ line: 5, key: { id: '5' }, row: { id: '5', name: 'plum', price: '7' } }],
      removed: [{ line: 5, key: { id: '4' }, row: { id: '4', name: 'kiwi', price: '6' } }],
      changed: [{ key: { id: '2' }, lines: { a: 3, b: 3 }, cells: { price: { old: '4', new: '40' } } }],
    });
    const none = JSON.parse((await tdv(dir, 'diff', '--rows', 'HEAD', 'HEAD', 'data/t.csv', '--json')).stdout);
    expect(none).toMatchObject({ key: [], summary: { added: 0, removed: 0, changed: 0, unchanged: 4 }, added: [], removed: [], changed: [] });
  });

  it('whole rows without --key; a Git-tracked CSV; the partitioned path under a small memory budget leaves no temp files', async () => {
    const dir = await tables();
    const whole = await tdv(dir, 'diff', '--rows', 'v1', 'HEAD', 'data/t.csv');
    expect(whole.stdout.split('\n')[0]).toBe('Rows of data/t.csv between v1 and HEAD (by whole rows): 2 added, 2 removed, 0 changed, 2 unchanged.');
    const g = JSON.parse((await tdv(dir, 'diff', '--rows', 'v1', 'HEAD', 'git.csv', '--key', 'k', '--json')).stdout);
    expect(g.summary).toMatchObject({ added: 1, changed: 1 });
    const n = 2000;
    put(dir, 'big.csv', `id,v\n${Array.from({ length: n }, (_, i) => `${i},${i}`).join('\n')}\n`);
    expect((await tdv(dir, 'add', '-q', 'big.csv')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    put(dir, 'big.csv', `id,v\n${Array.from({ length: n }, (_, i) => `${(i * 7) % n},${(i * 7) % n === 5 ? 'x' : (i * 7) % n}`).join('\n')}\n`);
    process.env.TDV_ROWS_MEMORY = '4096';
    try {
      const r = await tdv(dir, 'diff', '--rows', 'big.csv', '--key', 'id', '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).summary).toEqual({ added: 0, removed: 0, changed: 1, unchanged: n - 1, duplicateKeys: { a: 0, b: 0 } });
    } finally {
      delete process.env.TDV_ROWS_MEMORY;
    }
    expect(leftovers(dir)).toEqual([]);
  });

  it('a file inside a tracked directory, through its manifest; a missing cache object names the fetch that brings it', async () => {
    const dir = await makeRepo();
    put(dir, 'd/x.tsv', 'k\tv\n1\ta\n');
    expect((await tdv(dir, 'add', '-q', 'd')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'd');
    fs.rmSync(path.join(dir, 'd'), { recursive: true, force: true });
    put(dir, 'd/x.tsv', 'k\tv\n1\tb\n');
    const r = await tdv(dir, 'diff', '--rows', 'd/x.tsv', '--key', 'k', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).changed).toEqual([{ key: { k: '1' }, lines: { a: 2, b: 2 }, cells: { v: { old: 'a', new: 'b' } } }]);
    fs.rmSync(objPath(dir, sha('k\tv\n1\ta\n')), { force: true });
    const missing = await tdv(dir, 'diff', '--rows', 'd/x.tsv', '--key', 'k');
    expect(missing.code).toBe(1);
    expectOneLineError(missing.stderr, 'd/x.tsv at HEAD is not in the cache', 'tdv fetch --rev HEAD d/x.tsv');
    // The directory's manifest missing too, and no remote to fetch it from: still what is missing, and the fetch.
    for (const f of fs.readdirSync(path.join(dir, '.tdv/cache'), { recursive: true, withFileTypes: true })) {
      if (f.isFile() && f.name.endsWith('.dir')) fs.rmSync(path.join(f.parentPath, f.name));
    }
    const noManifest = await tdv(dir, 'diff', '--rows', 'd/x.tsv', '--key', 'k');
    expect(noManifest.code).toBe(1);
    expectOneLineError(noManifest.stderr, 'the directory manifest that lists d/x.tsv at HEAD is not in the cache', 'tdv fetch --rev HEAD d/x.tsv');
  });

  it('errors: one line naming the file and the fix, non-zero exit', async () => {
    const dir = await tables();
    const noKey = await tdv(dir, 'diff', '--rows', 'data/t.csv', '--key', 'sku');
    expect(noKey.code).toBe(2);
    expectOneLineError(noKey.stderr, 'data/t.csv at HEAD has no column "sku"; its columns are "id", "name", "price": pick --key from those');
    const keyAlone = await tdv(dir, 'diff', '--key', 'id');
    expect(keyAlone.code).toBe(2);
    expectOneLineError(keyAlone.stderr, '--key goes with --rows');
    const two = await tdv(dir, 'diff', '--rows', 'data/t.csv', 'git.csv');
    expect(two.code).toBe(2);
    expectOneLineError(two.stderr, '--rows compares one table');
    put(dir, 'notes.txt', 'x');
    await git(dir, 'add', 'notes.txt');
    await git(dir, 'commit', '-qm', 'notes');
    const fmt = await tdv(dir, 'diff', '--rows', '--', 'notes.txt');
    expect(fmt.code).toBe(2);
    expectOneLineError(fmt.stderr, 'cannot tell the format of notes.txt', '--format csv|tsv|jsonl');
    put(dir, 'data/t.csv', 'id,name,price\n1,"apple\n');
    const bad = await tdv(dir, 'diff', '--rows', 'data/t.csv');
    expect(bad.code).toBe(1);
    expectOneLineError(bad.stderr, 'data/t.csv in the workspace, line 2: a quoted field is never closed');
    fs.rmSync(path.join(dir, 'data/t.csv'));
    fs.symlinkSync('../git.csv', path.join(dir, 'data/t.csv'));
    const link = await tdv(dir, 'diff', '--rows', 'data/t.csv');
    expect(link.code).not.toBe(0);
    expectOneLineError(link.stderr, 'data/t.csv is a symlink');
    const asDir = await tdv(dir, 'diff', '--rows', 'v1', 'data');
    expect(asDir.code, asDir.stderr).toBe(1);
    expectOneLineError(asDir.stderr, 'data is a directory at v1; name one CSV, TSV or JSON Lines file inside it');
    expect(leftovers(dir)).toEqual([]);
  });

  it('Ctrl-C during the scan: exit 130, its temp files removed (the real bin/tdv)', async () => {
    const dir = await makeRepo();
    const row = (i: number) => `${i},${'v'.repeat(40)}\n`;
    const n = 400_000;
    const body = Array.from({ length: n }, (_, i) => row(i)).join('');
    put(dir, 'big.csv', `id,v\n${body}`);
    expect((await tdv(dir, 'add', '-q', 'big.csv')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    put(dir, 'big.csv', `id,v\n${body}${row(n)}`);
    const child = execa('node', [TDV_BIN, 'diff', '--rows', 'big.csv', '--key', 'id'], { cwd: dir, reject: false, env: { NO_COLOR: '1', TDV_ROWS_MEMORY: '100000' } });
    // Once its temp directory exists, the scan is under way (partition files being written).
    for (let i = 0; i < 1000 && leftovers(dir).length === 0 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^error: interrupted/);
    expect(leftovers(dir)).toEqual([]);
  });

  it('side A scanned in a worker thread (the real bin/tdv): the same document, in memory and partitioned; its errors are one line', async () => {
    const dir = await tables();
    const inProcess = (await tdv(dir, 'diff', '--rows', 'v1', 'data/t.csv', '--key', 'id', '--json')).stdout;
    const bin = (env: Record<string, string>, ...args: string[]) => execa('node', [TDV_BIN, 'diff', '--rows', ...args], { cwd: dir, reject: false, env: { NO_COLOR: '1', ...env } });
    const viaWorker = await bin({ TDV_ROWS_WORKER_MIN: '1' }, 'v1', 'data/t.csv', '--key', 'id', '--json');
    expect(viaWorker.exitCode, viaWorker.stderr).toBe(0);
    expect(JSON.parse(viaWorker.stdout)).toEqual(JSON.parse(inProcess));
    const partitioned = await bin({ TDV_ROWS_WORKER_MIN: '1', TDV_ROWS_MEMORY: '64' }, 'v1', 'data/t.csv', '--key', 'id', '--json');
    expect(JSON.parse(partitioned.stdout).summary).toEqual(JSON.parse(inProcess).summary);
    // B (the workspace, this thread) is bad; then A (HEAD, the worker).
    put(dir, 'data/t.csv', 'id,name,price\n1,2\n');
    const badB = await bin({ TDV_ROWS_WORKER_MIN: '1' }, 'data/t.csv');
    expect(badB.exitCode).toBe(1);
    expectOneLineError(`${badB.stderr}\n`, 'data/t.csv in the workspace, line 2: the row has 2 fields, the header 3');
    expect((await tdv(dir, 'add', '-q', 'data/t.csv')).code).toBe(0);
    await git(dir, 'commit', '-qam', 'bad');
    put(dir, 'data/t.csv', V1);
    const badA = await bin({ TDV_ROWS_WORKER_MIN: '1' }, 'data/t.csv');
    expect(badA.exitCode).toBe(1);
    expectOneLineError(`${badA.stderr}\n`, 'data/t.csv at HEAD, line 2: the row has 2 fields, the header 3');
    // Both bad: one after the other, A's error comes first; with the worker, both are scanned at once and B's (this thread's) wins.
    put(dir, 'data/t.csv', 'id,name,price\n1,2,3\n"4\n');
    expect((await bin({}, 'data/t.csv')).stderr).toContain('at HEAD, line 2');
    expect((await bin({ TDV_ROWS_WORKER_MIN: '1' }, 'data/t.csv')).stderr).toContain('data/t.csv in the workspace, line 3: a quoted field is never closed');
    expect(leftovers(dir)).toEqual([]);
  });
});
