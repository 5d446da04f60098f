import { describe, expect, it } from 'vitest';
import type { Stage } from '../../src/stages/load.js';
import type { LockedStage } from '../../src/stages/lock.js';
import { ParamsReader } from '../../src/stages/params.js';
import { type CheckContext, checkStage } from '../../src/stages/status.js';

const stage = (over: Partial<Stage> = {}): Stage => ({
  name: 's',
  cmd: 'make',
  deps: [],
  params: [],
  outs: [],
  metrics: [],
  env: {},
  wdir: '.',
  where: 'tdv.yaml:2:3',
  origins: new Map(),
  ...over,
});
const locked = (over: Partial<LockedStage> = {}): LockedStage => ({ cmd: 'make', deps: [], params: {}, outs: [], metrics: [], ...over });
const ID_OLD = `sha256:${'1'.repeat(64)}`;
const ID_NEW = `sha256:${'2'.repeat(64)}`;

/**
 * `tdv status` does not ask Docker (it takes tdv.lock's image ID as current);
 * `repro --dry` does. Both must still agree on whether a stage changed.
 */
function contexts(lock: LockedStage, docker: string | undefined): { status: CheckContext; dry: CheckContext } {
  const base = { params: new ParamsReader('/nonexistent'), hashPath: async () => undefined };
  return { status: { ...base, imageId: async () => lock.image }, dry: { ...base, imageId: async (s) => (s.image || s.build ? docker : undefined) } };
}

describe('checkStage: one definition of a changed stage for status and repro --dry', () => {
  const cases: [string, Partial<Stage>, Partial<LockedStage>, string | undefined, string][] = [
    ['gained image:', { image: 'python:3.12' }, {}, ID_NEW, 'image added: python:3.12'],
    ['gained build:', { build: { context: 'docker' } }, {}, ID_NEW, 'image added: build docker'],
    ['lost its image', {}, { image: ID_OLD }, undefined, 'image removed'],
  ];
  for (const [what, s, l, docker, reason] of cases) {
    it(`a stage that ${what} changed, for both`, async () => {
      const lock = locked(l);
      const { status, dry } = contexts(lock, docker);
      expect((await checkStage(stage(s), lock, status, true)).reasons).toEqual([reason]);
      expect((await checkStage(stage(s), lock, dry, true)).reasons).toEqual([reason]);
    });
  }

  it('an image whose ID changed is a change Docker alone sees (status takes tdv.lock as current)', async () => {
    const lock = locked({ image: ID_OLD });
    const { status, dry } = contexts(lock, ID_NEW);
    expect((await checkStage(stage({ image: 'python:3.12' }), lock, status, true)).reasons).toEqual([]);
    expect((await checkStage(stage({ image: 'python:3.12' }), lock, dry, true)).reasons).toEqual([`image changed: now ${ID_NEW.slice(0, 19)}`]);
  });
});
