import { describe, expect, it } from 'vitest';
import { mergeInputs } from '../../src/stages/job-spec.js';
import { parseMemory } from '../../src/stages/load.js';
import { ownerAlive, ownerLabel } from '../../src/repo/lib/runners.js';

describe('job specs', () => {
  it('resources.memory: bytes, or K/M/G/T as powers of 1024 (Ki, MiB too); nothing else', () => {
    expect([1024, '1024', '512M', '512m', '512Mi', '512MiB', '1.5G', '2g', '1T', '10b'].map(parseMemory)).toEqual([
      1024,
      1024,
      512 * 2 ** 20,
      512 * 2 ** 20,
      512 * 2 ** 20,
      512 * 2 ** 20,
      1.5 * 2 ** 30,
      2 * 2 ** 30,
      2 ** 40,
      10,
    ]);
    for (const bad of [0, -1, 1.5, '1.5', '', 'G', '2X', '2 GBs', '-1G', null, true, [1], '1e9']) expect([bad, parseMemory(bad)]).toEqual([bad, undefined]);
  });

  it('inputs: sorted by path, each once; the same path with two contents is refused', () => {
    const f = (p: string, sha = 'a'.repeat(64)) => ({ path: p, sha256: sha, size: 1 });
    expect(mergeInputs([f('b'), f('a'), f('b')])).toEqual([f('a'), f('b')]);
    expect(() => mergeInputs([f('a'), f('a', 'b'.repeat(64))])).toThrow(/a changed while the stage's inputs were being gathered/);
  });
});

describe('owner labels (what a runner sweep leaves alone)', () => {
  it('this process is alive; the same machine with a pid not running, or another start time, is not; another machine counts as alive', () => {
    const me = ownerLabel();
    expect(me).toMatch(/^[0-9a-f]{12}\.\d+\.\d+$/);
    expect(me.length).toBeLessThanOrEqual(63);
    expect(ownerAlive(me)).toBe(true);
    expect(ownerAlive(me.replace(/\.(\d+)$/, '.1'))).toBe(false);
    expect(ownerAlive(me.replace(/\.(\d+)\.(\d+)$/, '.4194300.1'))).toBe(false);
    expect(ownerAlive(`000000000000.${process.pid}.1`)).toBe(true);
    expect(ownerAlive('garbage')).toBe(false);
  });
});
