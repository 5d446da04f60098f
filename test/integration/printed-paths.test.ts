/**
 * Failure class 9 of issue 11: printed paths cannot forge output. A file name
 * may hold a newline, a carriage return, terminal escapes and a fake
 * "tdv: error" line; every human-readable line tdv prints about it stays one
 * logical line and shows the name escaped (as git quotes it), while `--json`
 * carries the name raw.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sampleRepo } from '../helpers/expect.js';
import { type RunResult, tdvBin, write } from '../helpers/repo.js';

const EVIL = 'evil\nerror: forged line\r\x1b[2K\x1b[31mtdv: error: fake\x1b[0m.csv';
/** How git (and tdv) quote it. */
const QUOTED = '"evil\\nerror: forged line\\r\\u001b[2K\\u001b[31mtdv: error: fake\\u001b[0m.csv"';

/** The quoted form of `<dir>/<EVIL><suffix>`. */
const quoted = (dir: string, suffix = '') => `"${dir}/${QUOTED.slice(1, -1)}${suffix}"`;

/** Nothing in the output can move the cursor, recolour, or start a line of its own. */
function expectUnforged(what: string, r: RunResult): void {
  for (const [stream, text] of [
    ['stdout', r.stdout],
    ['stderr', r.stderr],
  ] as const) {
    expect(text, `${what} ${stream}: a raw carriage return or escape`).not.toMatch(/[\r\x1b\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/);
    for (const line of text.split('\n')) {
      expect(line, `${what} ${stream}: a forged line`).not.toMatch(/^(error: forged|tdv: error|\S*mtdv: error)/);
      if (stream === 'stderr' && line !== '') expect(line, `${what}: every diagnostic line is one error or warning`).toMatch(/^(error|warning): /);
    }
  }
}

describe('file names with control characters are escaped in every human-readable line', () => {
  it('add, status, diff, checkout, push and their errors and warnings; --json stays raw', async () => {
    const { dir } = await sampleRepo({ commit: true });
    write(dir, `data/${EVIL}`, 'x\n');
    fs.symlinkSync('nowhere', path.join(dir, `data/${EVIL}-link`));

    const add = await tdvBin(dir, ['add', 'data']);
    expect(add.code, add.stderr).toBe(0);
    expectUnforged('add', add);
    expect(add.stderr).toContain(`warning: skipped ${quoted('data', '-link')}: symlink not followed`);

    write(dir, `data/${EVIL}`, 'changed\n');
    const st = await tdvBin(dir, ['status']);
    expectUnforged('status', st);
    expect(st.stdout).toContain(`modified:  ${quoted('data')}`);
    const stJson = JSON.parse((await tdvBin(dir, ['status', '--json'])).stdout);
    expect(stJson.data[0].files.modified).toContain(EVIL);

    const diff = await tdvBin(dir, ['diff']);
    expectUnforged('diff', diff);
    expect(diff.stdout).toContain(quoted('data'));
    const diffJson = JSON.parse((await tdvBin(dir, ['diff', '--json'])).stdout);
    expect(diffJson.changes.map((c: { path: string }) => c.path)).toContain(`data/${EVIL}`);

    // The change is not cached: checkout refuses, naming the file in one line.
    const conflict = await tdvBin(dir, ['checkout']);
    expect(conflict.code).toBe(1);
    expectUnforged('checkout (conflict)', conflict);
    expect(conflict.stderr).toContain('evil\\nerror: forged line\\r\\u001b[2K');

    expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
    fs.rmSync(path.join(dir, `data/${EVIL}`));
    const dry = await tdvBin(dir, ['checkout', '--dry']);
    expectUnforged('checkout --dry', dry);
    expect(dry.stdout).toContain(`restore: ${quoted('data')}`);

    const push = await tdvBin(dir, ['push', '--dry']);
    expectUnforged('push --dry', push);
    expect(push.stdout).toContain(quoted('data'));

    const typo = await tdvBin(dir, ['status', `data/${EVIL}x`]);
    expect(typo.code).toBe(2);
    expectUnforged('status of a typo', typo);
  });

  it('a top-level name with a line break is refused by add (a .gitignore line cannot hold it), named escaped', async () => {
    const { dir } = await sampleRepo({ commit: true });
    write(dir, EVIL, 'x\n');
    const r = await tdvBin(dir, ['add', EVIL]);
    expect(r.code).toBe(2);
    expectUnforged('add', r);
    expect(r.stderr).toBe(`error: ${QUOTED} has a line break in its name, which a .gitignore line cannot hold; rename it, or add the directory holding it`);
    expect(fs.readFileSync(path.join(dir, '.gitignore'), 'utf8')).not.toContain('forged');
    expect(fs.existsSync(path.join(dir, `${EVIL}.tdv`))).toBe(false);
  });

  it('an error message built from a name anywhere in tdv is one line: a tdv.yaml output named with escapes', async () => {
    const { dir } = await sampleRepo({ commit: true });
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: "true"\n    outs: ["out\\nerror: forged\\r\\e[2K/x.tdv"]\n');
    const r = await tdvBin(dir, ['repro']);
    expect(r.code).toBe(1);
    expectUnforged('repro', r);
    expect(r.stderr).toContain('outs path "out\\nerror: forged\\r\\u001b[2K/x.tdv" of stage "a"');
  });
});
