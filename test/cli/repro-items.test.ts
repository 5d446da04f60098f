import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, objPath, sha } from '../helpers/expect.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';

/**
 * Per-item stages (`foreach-file`): which items run, what the output
 * directory and tdv.lock end up holding, failures, hostile names, and the
 * Docker runner's batches. Through the CLI (in-process) with real Git repos.
 */
const STAGE = (cmd = 'cp ${item} ${out}/${item.stem}.out', extra = '') =>
  `stages:\n  each:\n    foreach-file: {dir: data/in, pattern: "*.txt"}\n    cmd: ${JSON.stringify(cmd)}\n    outs: [data/out]\n${extra}`;

interface Counts {
  items: number;
  ran: number;
  restored: number;
  unchanged: number;
  dropped: number;
}

async function repro(dir: string, ...args: string[]): Promise<{ code: number; counts?: Counts; json: Record<string, unknown>; stderr: string }> {
  const r = await tdv(dir, 'repro', '--json', ...args);
  const json = JSON.parse(r.stdout || '{}') as { items?: ({ stage: string } & Counts)[] };
  const c = json.items?.[0];
  return { code: r.code, stderr: r.stderr, json, ...(c ? { counts: { items: c.items, ran: c.ran, restored: c.restored, unchanged: c.unchanged, dropped: c.dropped } } : {}) };
}

function files(dir: string, rel: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of fs.readdirSync(path.join(dir, rel)).sort()) out[n] = read(dir, `${rel}/${n}`);
  return out;
}

async function itemsRepo(n = 5, yaml = STAGE()): Promise<string> {
  const dir = await newRepo();
  for (let i = 1; i <= n; i++) write(dir, `data/in/f${i}.txt`, `item ${i}\n`);
  write(dir, 'data/in/notes.md', 'not an item\n');
  expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
  write(dir, 'tdv.yaml', yaml);
  return dir;
}

describe('tdv repro: foreach-file stages', () => {
  it('runs each item once, then only added and changed items; files of removed items leave the output', async () => {
    const dir = await itemsRepo();
    const first = await repro(dir);
    expect(first).toMatchObject({ code: 0, counts: { items: 5, ran: 5, restored: 0, unchanged: 0, dropped: 0 } });
    expect(files(dir, 'data/out')).toEqual({ 'f1.out': 'item 1\n', 'f2.out': 'item 2\n', 'f3.out': 'item 3\n', 'f4.out': 'item 4\n', 'f5.out': 'item 5\n' });
    // tdv.lock: the input directory as a dep, the output directory as one manifest.
    const lock = read(dir, 'tdv.lock');
    expect(lock).toMatch(/deps:\n\s+- path: data\/in\n\s+sha256: [0-9a-f]{64}\.dir/);
    expect(lock).toMatch(/outs:\n\s+- path: data\/out\n\s+sha256: [0-9a-f]{64}\.dir\n\s+size: 35\n\s+nfiles: 5/);

    expect(await tdv(dir, 'repro')).toEqual({ code: 0, stdout: 'Pipeline is up to date.\n', stderr: '' });
    write(dir, 'data/in/f6.txt', 'item 6\n');
    write(dir, 'data/in/f2.txt', 'item 2, again\n');
    fs.rmSync(path.join(dir, 'data/in/f1.txt'));
    const second = await repro(dir);
    expect(second).toMatchObject({ code: 0, counts: { items: 5, ran: 2, restored: 0, unchanged: 3, dropped: 2 } });
    expect(files(dir, 'data/out')).toEqual({ 'f2.out': 'item 2, again\n', 'f3.out': 'item 3\n', 'f4.out': 'item 4\n', 'f5.out': 'item 5\n', 'f6.out': 'item 6\n' });
    expect((await tdv(dir, 'status')).stdout).toBe('Data and pipelines are up to date.\n');

    // An item back as it was comes from the run-cache: same stage, path and content.
    write(dir, 'data/in/f1.txt', 'item 1\n');
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { ran: 0, restored: 1, unchanged: 5 } });
    expect(read(dir, 'data/out/f1.out')).toBe('item 1\n');
  });

  it('after tdv gc, a changed item still runs alone (gc keeps the manifests of run records)', async () => {
    const dir = await itemsRepo(5);
    expect((await repro(dir)).code).toBe(0);
    const gc = await tdv(dir, 'gc', '-w', '-f');
    expect(gc.code).toBe(0);
    write(dir, 'data/in/f1.txt', 'item 1, new\n');
    fs.rmSync(path.join(dir, 'data/in/f2.txt'));
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { items: 4, ran: 1, unchanged: 3, dropped: 2 } });
    expect(files(dir, 'data/out')).toEqual({ 'f1.out': 'item 1, new\n', 'f3.out': 'item 3\n', 'f4.out': 'item 4\n', 'f5.out': 'item 5\n' });
  });

  it('a changed command reruns every item; the text line counts the items', async () => {
    const dir = await itemsRepo(3);
    expect((await repro(dir)).code).toBe(0);
    write(dir, 'tdv.yaml', STAGE('cat ${item} ${item} > ${out}/${item.name}'));
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^done each in [\d.]+ s: 3 of 3 items ran$/m);
    expect(files(dir, 'data/out')).toEqual({ 'f1.txt': 'item 1\nitem 1\n', 'f2.txt': 'item 2\nitem 2\n', 'f3.txt': 'item 3\nitem 3\n' });
  });

  it('a failing item fails the stage, is named, and the items that succeeded are not run again', async () => {
    const dir = await itemsRepo(4, STAGE('grep -q ok ${item} || exit 7; cp ${item} ${out}/${item.name}', '    desc: items that say ok\n'));
    for (let i = 1; i <= 4; i++) write(dir, `data/in/f${i}.txt`, i === 3 ? 'bad\n' : `ok ${i}\n`);
    const r = await tdv(dir, 'repro', '-j', '1', '--keep-going');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "each": item data/in/f3.txt (exit code 7) failed; the 3 item results that succeeded are kept for the rerun');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    write(dir, 'data/in/f3.txt', 'ok now\n');
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { items: 4, ran: 1, restored: 3 } });
    expect(Object.keys(files(dir, 'data/out'))).toEqual(['f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
  });

  it('an item that kills its batch fails with it; the items before it are kept', async () => {
    const dir = await itemsRepo(3, STAGE('grep -q 2 ${item} && kill -9 $$; cp ${item} ${out}/${item.name}'));
    const r = await tdv(dir, 'repro', '-j', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('item data/in/f2.txt (its batch ended with exit code 137 before it finished) failed; the 1 item result that succeeded is kept');
    write(dir, 'tdv.yaml', STAGE('cp ${item} ${out}/${item.name}'));
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { ran: 3 } });
  });

  it('item names are data, never shell: quotes, spaces, $(...) and newlines', async () => {
    const dir = await itemsRepo(0);
    const names = ["a b'c.txt", '$(touch PWNED).txt', '`touch PWNED2`.txt', 'new\nline.txt', '-n.txt'];
    for (const n of names) write(dir, `data/in/${n}`, `${n}\n`);
    expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
    const r = await repro(dir);
    expect(r).toMatchObject({ code: 0, counts: { ran: 5 } });
    expect(fs.existsSync(path.join(dir, 'PWNED')) || fs.existsSync(path.join(dir, 'data/in/PWNED'))).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'data/out')).sort()).toEqual(names.map((n) => n.replace(/\.txt$/, '.out')).sort());
    expect(read(dir, "data/out/a b'c.out")).toBe("a b'c.txt\n");
  });

  it('two items writing one name, or a symlink in ${out}: the stage fails naming the item, nothing recorded', async () => {
    const dir = await itemsRepo(2, STAGE('cp ${item} ${out}/same.txt'));
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/item data\/in\/f[12]\.txt wrote data\/out\/same\.txt, which item data\/in\/f[12]\.txt wrote too/);
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    write(dir, 'tdv.yaml', STAGE('ln -s /etc/passwd ${out}/${item.name}'));
    const s = await tdv(dir, 'repro', '-j', '1');
    expect(s.code).toBe(1);
    expect(s.stderr).toContain('a symlink: tdv takes only regular files and directories');
    expect(fs.existsSync(path.join(dir, 'data/out'))).toBe(false);
  });

  it('one item writing x and another x/y: the stage fails naming both, and no manifest holding both enters the cache', async () => {
    const dir = await itemsRepo(2, STAGE('if [ ${item.stem} = f1 ]; then echo a > ${out}/x; else mkdir ${out}/x && echo b > ${out}/x/y; fi'));
    const r = await tdv(dir, 'repro', '-j', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('item data/in/f2.txt wrote data/out/x/y, but item data/in/f1.txt wrote data/out/x as a file');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'data/out'))).toBe(false);
    // Before the fix the union was written to the cache and named by its path, and fsck failed on it from then on.
    expect((await tdv(dir, 'fsck')).code).toBe(0);
  });

  it("an item's run record whose manifest states sizes its objects do not have is not used: the item runs", async () => {
    const dir = await itemsRepo(2);
    expect((await repro(dir)).code).toBe(0);
    // The record of f1 as it is now: find it by its manifest, then make that manifest lie about the size.
    const runs = path.join(dir, '.tdv/cache/runs');
    const good = `[{"relpath":"f1.out","sha256":"${sha('item 1\n')}","size":7}]`;
    let rec: string | undefined;
    for (const d of fs.readdirSync(runs)) for (const f of fs.readdirSync(path.join(runs, d))) if (read(dir, `.tdv/cache/runs/${d}/${f}`).includes(sha(good))) rec = path.join(runs, d, f);
    expect(rec).toBeDefined();
    const bad = `[{"relpath":"f1.out","sha256":"${sha('item 1\n')}","size":99999}]`;
    fs.mkdirSync(path.dirname(objPath(dir, `${sha(bad)}.dir`)), { recursive: true });
    fs.writeFileSync(objPath(dir, `${sha(bad)}.dir`), bad);
    fs.chmodSync(rec!, 0o644);
    fs.writeFileSync(rec!, JSON.stringify({ outs: [{ path: 'data/out', sha256: `${sha(bad)}.dir`, size: 99999, nfiles: 1 }], metrics: [] }));
    write(dir, 'data/in/f1.txt', 'item 1, changed\n');
    expect((await repro(dir)).code).toBe(0);
    // f1 back as it was, with a new item so that the whole stage is not one run-cache hit.
    write(dir, 'data/in/f1.txt', 'item 1\n');
    write(dir, 'data/in/f3.txt', 'item 3\n');
    const r = await repro(dir);
    expect(r).toMatchObject({ code: 0, counts: { ran: 2, restored: 0 } });
    expect(r.stderr).toContain('not restoring an item from it, the item runs instead');
    expect(read(dir, 'tdv.lock')).toMatch(/path: data\/out\n\s+sha256: [0-9a-f]{64}\.dir\n\s+size: 21\n/);
    expect(read(dir, 'data/out/f1.out')).toBe('item 1\n');
  });

  it('an item written to while the stage runs fails, and its result is not recorded under the content it had before', async () => {
    const dir = await itemsRepo(2, STAGE('cp ${item} ${out}/${item.name}; if [ ${item.stem} = f2 ] && [ -e flip ]; then rm flip; echo swapped > ${item}; fi'));
    write(dir, 'flip', '');
    const r = await tdv(dir, 'repro', '-j', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('item data/in/f2.txt (it changed while the stage ran; run again when nothing writes to it) failed');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    // Back as it was: f2 runs (no record of "swapped" under its old content), f1 comes from the run-cache.
    write(dir, 'data/in/f2.txt', 'item 2\n');
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { ran: 1, restored: 1 } });
    expect(files(dir, 'data/out')).toEqual({ 'f1.txt': 'item 1\n', 'f2.txt': 'item 2\n' });
  });

  it('from a wdir that is the input directory, an item named like an option is given as ./-...', async () => {
    const dir = await newRepo();
    write(dir, 'data/in/--version.txt', 'v\n');
    write(dir, 'data/in/-n.txt', 'n\n');
    expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  v:\n    wdir: data/in\n    foreach-file: {dir: .}\n    cmd: cat ${item} > ${out}/${item.stem}.o\n    outs: [../out]\n');
    expect(await repro(dir)).toMatchObject({ code: 0, counts: { ran: 2 } });
    expect(files(dir, 'data/out')).toEqual({ '--version.o': 'v\n', '-n.o': 'n\n' });
  });

  it('${item.*} variables and environment, from a wdir', async () => {
    const dir = await newRepo();
    write(dir, 'data/in/sub/x.tar.gz', 'x\n');
    expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
    write(
      dir,
      'tdv.yaml',
      'stages:\n  v:\n    wdir: data\n    foreach-file: {dir: in}\n    cmd: echo "${item} ${item.name} ${item.stem} ${item.ext} ${item.rel} ${item.dir} $TDV_ITEM_REL" > ${out}/vars\n    outs: [out]\n',
    );
    expect((await repro(dir)).code).toBe(0);
    expect(read(dir, 'data/out/vars')).toBe('in/sub/x.tar.gz x.tar.gz x.tar .gz sub/x.tar.gz sub sub/x.tar.gz\n');
  });

  it.each([
    ['two outputs', 'outs: [a, b]', 'exactly one entry in "outs"'],
    ['metrics', 'metrics: [m.json]', 'cannot have "metrics"'],
    ['overlap', 'outs: [data/in/out]', 'overlap'],
    ['unknown field', 'cmd: cp ${item.size} ${out}', '${item.size} in "cmd" is not something tdv fills in'],
    ['absolute pattern', 'pattern: /x', '"pattern" of "foreach-file" in stage "each" is absolute'],
    ['no dir', 'nodir', 'has no "dir"'],
  ])('refuses %s in one line naming tdv.yaml', async (_name, change, message) => {
    const dir = await itemsRepo(1);
    let yaml = STAGE();
    if (change.startsWith('outs:')) yaml = yaml.replace('outs: [data/out]', change);
    else if (change.startsWith('metrics:')) yaml += `    ${change}\n`;
    else if (change.startsWith('cmd:')) yaml = yaml.replace(/cmd: .*/, change);
    else if (change.startsWith('pattern:')) yaml = yaml.replace('pattern: "*.txt"', change);
    else yaml = yaml.replace('dir: data/in, ', '');
    write(dir, 'tdv.yaml', yaml);
    const r = await tdv(dir, 'repro');
    expect(r.code).not.toBe(0);
    expectOneLineError(r.stderr, 'tdv.yaml', message);
  });

  it('refuses foreach-file inside a foreach (both set ${item})', async () => {
    const dir = await itemsRepo(1);
    write(dir, 'tdv.yaml', 'stages:\n  e:\n    foreach: [a]\n    do:\n      foreach-file: {dir: data/in}\n      cmd: cp ${item} ${out}\n      outs: ["out/${item}"]\n');
    const r = await tdv(dir, 'repro');
    expectOneLineError(r.stderr, 'tdv.yaml', 'inside a foreach or matrix');
  });

  it('--dry says it would run; a restore of the whole stage from the run-cache after its output is deleted', async () => {
    const dir = await itemsRepo(3);
    expect((await tdv(dir, 'repro', '--dry')).stdout).toContain('would run each: never run (3 of 3 items)');
    expect(fs.existsSync(path.join(dir, 'data/out'))).toBe(false);
    expect((await repro(dir)).code).toBe(0);
    write(dir, 'data/in/f4.txt', 'item 4\n');
    expect((await tdv(dir, 'repro', '--dry')).stdout).toContain('would run each: deps changed: data/in (1 of 4 items)');
    fs.rmSync(path.join(dir, 'data/in/f4.txt'));
    fs.rmSync(path.join(dir, 'data/out'), { recursive: true });
    const r = await tdv(dir, 'repro');
    expect(r.stdout).toContain('restored each from the run-cache');
    expect(Object.keys(files(dir, 'data/out'))).toEqual(['f1.out', 'f2.out', 'f3.out']);
  });
});

describeDocker('tdv repro: foreach-file stages in Docker', () => {
  it('runs items in one container per batch, not one per item', async () => {
    const dir = await itemsRepo(6, STAGE('cp ${item} ${out}/${item.stem}.out && echo in-container > ${out}/${item.stem}.where', `    image: ${TEST_IMAGE}\n`));
    const r = await tdv(dir, '-v', 'repro', '-j', '2');
    expect(r.code).toBe(0);
    const runs = (r.stderr.match(/docker run /g) ?? []).length + (r.stdout.match(/docker run /g) ?? []).length;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(2);
    expect(read(dir, 'data/out/f6.out')).toBe('item 6\n');
    expect(read(dir, 'data/out/f1.where')).toBe('in-container\n');
    expect(read(dir, 'tdv.lock')).toMatch(/image: sha256:[0-9a-f]{64}/);
    const left = await execa('docker', ['ps', '--all', '--quiet', `--filter=label=tdv.root=${dir}`]);
    expect(left.stdout).toBe('');
  });
});
