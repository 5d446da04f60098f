import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { buildDag, withDownstream, withUpstream } from '../../src/stages/graph.js';
import type { Pipeline, Stage } from '../../src/stages/load.js';

/** A stage with only what the graph reads; positions are made up but distinct, to check which one an error names. */
function stage(name: string, deps: string[], outs: string[], metrics: string[] = []): Stage {
  const origins = new Map([...outs, ...metrics].map((o, i) => [o, `tdv.yaml:${name.length}:${i + 1}`]));
  return { name, cmd: 'true', deps, params: [], outs, metrics, env: {}, wdir: '.', where: `tdv.yaml:stage:${name}`, origins } as Stage;
}

function pipeline(...stages: Stage[]): Pipeline {
  return { file: 'tdv.yaml', stages: new Map(stages.map((s) => [s.name, s])) };
}

function errorOf(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FormatError);
    return err as FormatError;
  }
  throw new Error('expected a FormatError');
}

describe('buildDag', () => {
  it('orders producers before consumers, ties in tdv.yaml order, with edges both ways', () => {
    const dag = buildDag(
      pipeline(
        stage('report', ['data/joined.csv'], ['report.md']),
        stage('sales', ['raw/sales.csv'], ['data/sales.csv']),
        stage('weather', [], ['data/weather.csv']),
        stage('join', ['data/sales.csv', 'data/weather.csv'], ['data/joined.csv']),
      ),
    );
    expect(dag.order).toEqual(['sales', 'weather', 'join', 'report']);
    expect([...dag.upstream.get('join')!].sort()).toEqual(['sales', 'weather']);
    expect([...dag.downstream.get('sales')!]).toEqual(['join']);
    expect(dag.upstream.get('sales')!.size).toBe(0);
    expect(dag.producers.get('data/joined.csv')).toBe('join');
  });

  it('links a dep inside an output directory, and a dep directory that contains an output, but not a sibling with a common prefix', () => {
    const dag = buildDag(
      pipeline(
        stage('images', [], ['data/images']),
        stage('one', ['data/images/cat.jpg'], ['one.txt']),
        stage('all', ['data'], ['all.txt']),
        stage('other', ['data/images2'], ['other.txt']),
        stage('metric', ['scores.json'], ['m.txt']),
        stage('score', [], [], ['scores.json']),
      ),
    );
    expect([...dag.upstream.get('one')!]).toEqual(['images']);
    expect([...dag.upstream.get('all')!]).toEqual(['images']);
    expect(dag.upstream.get('other')!.size).toBe(0);
    // Metrics are outputs too.
    expect([...dag.upstream.get('metric')!]).toEqual(['score']);
    expect(dag.order.indexOf('score')).toBeLessThan(dag.order.indexOf('metric'));
  });

  it('refuses two stages writing the same path, or one inside the other, at the later output', () => {
    const same = errorOf(() => buildDag(pipeline(stage('a', [], ['out']), stage('b', [], ['out']))));
    expect(same.message).toContain('out is an output of both "a" and "b"');
    const nested = errorOf(() => buildDag(pipeline(stage('a', [], ['data']), stage('bb', [], ['data/x.csv']))));
    expect(nested.message).toContain('(output of "bb") is inside data (output of "a")');
    expect(nested.message).toContain('tdv.yaml:2:1');
    // "data-x" sorts between "data" and "data/x" byte-wise: it must not hide the overlap.
    const between = errorOf(() => buildDag(pipeline(stage('a', [], ['data']), stage('b', [], ['data-x']), stage('c', [], ['data/x']))));
    expect(between.message).toContain('is inside data');
    expect(() => buildDag(pipeline(stage('a', [], ['data']), stage('b', [], ['data-x'])))).not.toThrow();
  });

  it('refuses an output that overlaps data a pointer tracks, naming the pointer and the fix', () => {
    const err = errorOf(() => buildDag(pipeline(stage('a', [], ['data/out.csv'])), new Map([['data', 'data.tdv']])));
    expect(err.message).toContain('overlaps data, which data.tdv tracks');
    expect(err.message).toContain('tdv remove data.tdv');
  });

  it('names a cycle in data-flow order, including a stage that reads its own output', () => {
    const loop = errorOf(() => buildDag(pipeline(stage('a', ['y'], ['x']), stage('b', ['x'], ['y']), stage('c', [], ['z']))));
    expect(loop.message).toMatch(/the stages form a cycle: (a -> b -> a|b -> a -> b)/);
    const self = errorOf(() => buildDag(pipeline(stage('s', ['out/part'], ['out']))));
    expect(self.message).toContain('the stages form a cycle: s -> s');
  });

  it('names only the stages in the cycle, not one merely downstream of it, at the position of a stage in it', () => {
    // tail reads the loop's output and comes first in tdv.yaml; head -> mid -> tip -> head is the loop.
    const err = errorOf(() => buildDag(pipeline(stage('tail', ['t'], ['u']), stage('head', ['z'], ['x']), stage('mid', ['x'], ['y']), stage('tip', ['y'], ['z', 't']))));
    expect(err.message).toMatch(/^tdv\.yaml:stage:(head|mid|tip): the stages form a cycle: /);
    const loop = /cycle: (.*?)\./.exec(err.message)![1]!.split(' -> ');
    expect(loop).toHaveLength(4);
    expect(loop[0]).toBe(loop[3]);
    expect(new Set(loop)).toEqual(new Set(['head', 'mid', 'tip']));
    // In data-flow order: each stage is followed by the one reading its output.
    const next = { head: 'mid', mid: 'tip', tip: 'head' } as Record<string, string>;
    for (let i = 0; i < 3; i++) expect(loop[i + 1]).toBe(next[loop[i]!]);
  });
});

describe('withUpstream / withDownstream', () => {
  const dag = buildDag(pipeline(stage('a', [], ['a.out']), stage('b', ['a.out'], ['b.out']), stage('c', ['b.out'], ['c.out']), stage('d', ['a.out'], ['d.out']), stage('lone', [], ['lone.out'])));

  it('closes over dependencies, in DAG order', () => {
    expect(withUpstream(dag, ['c'])).toEqual(['a', 'b', 'c']);
    expect(withUpstream(dag, ['d', 'lone'])).toEqual(['a', 'd', 'lone']);
    expect(withUpstream(dag, [])).toEqual([]);
  });

  it('closes over dependents, in DAG order', () => {
    expect(withDownstream(dag, ['a'])).toEqual(['a', 'b', 'c', 'd']);
    expect(withDownstream(dag, ['b'])).toEqual(['b', 'c']);
    expect(withDownstream(dag, ['lone'])).toEqual(['lone']);
  });
});
