import { describe, expect, it } from 'vitest';
import { batchScript, itemCommand, itemKey, itemVars, parseStatus, patternProblem, selectItems } from '../../src/stages/items.js';

const entries = ['a.jpg', 'b.png', 'sub/c.jpg', 'sub/deep/d.JPG', '.hidden.jpg'].map((relpath, i) => ({ relpath, sha256: String(i).repeat(64), size: i }));

describe('per-item stages: plumbing', () => {
  it('a pattern without "/" matches names at any depth, with "/" the path; dot files too; ** is everything', () => {
    expect(selectItems(entries, '*.jpg').map((i) => i.rel)).toEqual(['a.jpg', 'sub/c.jpg', '.hidden.jpg']);
    expect(selectItems(entries, 'sub/*.jpg').map((i) => i.rel)).toEqual(['sub/c.jpg']);
    expect(selectItems(entries, 'sub/**').map((i) => i.rel)).toEqual(['sub/c.jpg', 'sub/deep/d.JPG']);
    expect(selectItems(entries, '*.{jpg,png}').length).toBe(4);
    expect(selectItems(entries, '**').length).toBe(5);
  });

  it('refuses patterns that are empty, absolute or go up', () => {
    expect(patternProblem('')).toBe('is empty');
    expect(patternProblem('/x/*.jpg')).toMatch(/absolute/);
    expect(patternProblem('../*.jpg')).toMatch(/"\.\."/);
    expect(patternProblem('*.jpg')).toBeUndefined();
  });

  it('variables from a wdir; values quoted as one shell word; \\${item} kept as written', () => {
    const v = itemVars('data/in', 'sub/x y.tar.gz', 'data', '/tmp/o/1');
    expect(v).toEqual({ item: 'in/sub/x y.tar.gz', name: 'x y.tar.gz', stem: 'x y.tar', ext: '.gz', rel: 'sub/x y.tar.gz', dir: 'sub', out: '/tmp/o/1' });
    expect(itemCommand('cp ${item} ${out}/${item.stem}.bak \\${item}', v)).toBe("cp 'in/sub/x y.tar.gz' /tmp/o/1/'x y.tar'.bak ${item}");
    expect(itemCommand('echo ${item}', itemVars('d', "it's $(x)", '.', 'o'))).toBe(`echo 'd/it'\\''s $(x)'`);
    // Paths starting with - are given as ./-...: never an option to the command.
    expect(itemVars('d', '-n.txt', 'd', 'o')).toMatchObject({ item: './-n.txt', rel: './-n.txt', dir: '.', name: '-n.txt', stem: '-n' });
    expect(itemVars('d', '--x/y.txt', 'd', 'o')).toMatchObject({ item: './--x/y.txt', rel: './--x/y.txt', dir: './--x' });
    expect(itemVars('d', '-n.txt', '.', 'o').item).toBe('d/-n.txt');
  });

  it('item keys change with the stage key, the path and the content', () => {
    const k = itemKey('s', { rel: 'a', sha256: 'x' });
    expect(new Set([k, itemKey('t', { rel: 'a', sha256: 'x' }), itemKey('s', { rel: 'b', sha256: 'x' }), itemKey('s', { rel: 'a', sha256: 'y' })]).size).toBe(4);
  });

  it('a batch script records each item status and stops at the first failure unless told to keep going', () => {
    const items = [0, 1].map((index) => ({ index, vars: itemVars('d', `f${index}`, '.', `o/${index}`) }));
    const s = batchScript(['false'], items, '/s', false);
    expect(s).toContain('echo "0 $tdv_s" >> "$tdv_status"; [ "$tdv_s" -eq 0 ] || exit "$tdv_s"');
    expect(batchScript(['false'], items, '/s', true)).not.toContain('|| exit');
    expect(batchScript(['false'], items, '/s', false, { stopWithZero: true })).toContain('|| exit 0');
    expect(batchScript(['x'], items, '/s', false, { mkdirs: true })).toContain('mkdir -p -- "$TDV_OUT" && (');
    expect(parseStatus('0 0\n1 3\ngarbage\n')).toEqual(
      new Map([
        [0, 0],
        [1, 3],
      ]),
    );
  });
});
