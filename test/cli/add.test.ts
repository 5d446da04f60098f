import { describe, expect, it } from 'vitest';
import { tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv add` words its AddResult (one line per target, then the
 * `git add` to run), its error lines and exit codes, in one place. What add
 * writes is tested through the API, in test/api/add.test.ts and
 * test/integration/add.test.ts.
 */
describe('tdv add: output', () => {
  it('"Added <path> (<size>) -> <pointer>", then the `git add` of the pointers and .gitignore files', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'a,b\n1,2\n');
    write(dir, 'images/a.png', 'AAAA');
    write(dir, 'images/sub/b.png', 'BBB');
    write(dir, 'raw/2024/events.json', '{}\n');
    expect(await tdv(dir, 'add', 'data.csv', 'images', 'raw/2024/events.json')).toEqual({
      code: 0,
      stdout:
        'Added data.csv (8 B) -> data.csv.tdv\nAdded images (2 files, 7 B) -> images.tdv\nAdded raw/2024/events.json (3 B) -> raw/2024/events.json.tdv\n\nTo track the changes with Git, run:\n  git add data.csv.tdv .gitignore images.tdv raw/2024/events.json.tdv raw/2024/.gitignore\n',
      stderr: '',
    });
  });

  it('unchanged data: "<path> is unchanged (<size>)", and no `git add`', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'same\n');
    write(dir, 'images/a.png', 'A');
    expect((await tdv(dir, 'add', 'data.csv', 'images')).code).toBe(0);
    expect(await tdv(dir, 'add', 'data.csv', 'images')).toEqual({ code: 0, stdout: 'data.csv is unchanged (5 B)\nimages is unchanged (1 file, 1 B)\n', stderr: '' });
  });

  it('--json prints the AddResult as one JSON document and nothing else; a failure prints the error document', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'a,b\n');
    const r = await tdv(dir, 'add', 'data.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ added: [{ path: 'data.csv', pointer: 'data.csv.tdv', size: 4, changed: true }], gitFiles: ['data.csv.tdv', '.gitignore'] });
    const bad = await tdv(dir, 'add', 'nope.csv', '--json');
    expect(bad.code).not.toBe(0);
    expect(JSON.parse(bad.stdout).error.code).toBeTypeOf('string');
  });

  it('a name with a space is quoted in the `git add` line', async () => {
    const dir = await newRepo();
    write(dir, 'my data.csv', 'x\n');
    const r = await tdv(dir, 'add', 'my data.csv');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("  git add 'my data.csv.tdv' .gitignore\n");
  });

  it('a refused target: exit 2, one error line naming it, nothing on stdout', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'add', 'nope.csv');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'nope.csv does not exist');
  });
});
