import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { quotePath } from '../formats/paths.js';
import { PIPELINE_FILE, type Stage } from '../stages/load.js';
import { type LockedPath, lockedStage, readLock, writeLock } from '../stages/lock.js';
import { ParamsReader } from '../stages/params.js';
import type { DockerImages, StageRunner } from '../stages/runner.js';
import { stagesNamed } from '../stages/template.js';
import { checkStage, type StageInputs } from '../stages/status.js';
import { addGitignoreEntry, removeGitignoreEntry } from '../workspace/gitignore.js';
import { cacheTarget, hashWorkspace } from './lib/hashing.js';
import { loadDag, stageHasher } from './lib/pipeline.js';
import type { Repo } from './repo.js';

export interface CommitOptions {
  /** Stage names; none means every stage. */
  stages?: string[];
  /** Injectable Docker image resolution (tests). */
  docker?: StageRunner & DockerImages;
}

export interface CommitResult {
  /** Stages whose outputs were recorded in tdv.lock now. */
  committed: string[];
  /** Stages tdv.lock already recorded as they are. */
  unchanged: string[];
}

/**
 * `tdv commit`: records the outputs a stage has now, with its deps and params
 * as they are now, in tdv.lock and the cache, without running it (as `dvc
 * commit`): for outputs made by hand, or by a command run outside tdv.
 * Every selected stage is checked before anything is written: a dep or an
 * output that does not exist refuses the whole commit. The run-cache is not
 * told: these outputs did not necessarily come from the command.
 */
export async function commit(repo: Repo, opts: CommitOptions = {}): Promise<CommitResult> {
  return repo.withLock('commit', async () => {
    const dag = await loadDag(repo);
    if (!dag) throw new TdvError('NO_PIPELINE', `no ${PIPELINE_FILE} in ${repo.root}; declare stages there first (\`tdv stage add\`)`);
    // A foreach or matrix name (`fit`) names every stage it made (`fit@a`, `fit@b`), as repro and freeze take it.
    const wanted = (opts.stages ?? []).flatMap((n) => stagesNamed(dag.stages.keys(), n));
    for (const n of wanted) {
      if (!dag.stages.has(n)) throw new UsageError(`unknown stage "${n}"; stages in ${PIPELINE_FILE}: ${[...dag.stages.keys()].join(', ') || '(none)'}`);
    }
    const names = wanted.length ? dag.order.filter((n) => wanted.includes(n)) : dag.order;
    const lock = await readLock(repo.root);
    const params = new ParamsReader(repo.root);
    const hashPath = stageHasher(repo);
    const images = new ImageIds(repo, opts.docker);
    // Phase 1: what each stage's inputs and outputs are now; refuse before writing anything.
    const todo: { stage: Stage; inputs: StageInputs }[] = [];
    const res: CommitResult = { committed: [], unchanged: [] };
    for (const n of names) {
      const stage = dag.stages.get(n)!;
      // Recorded as it is: frozen and always_changed say when repro runs it, not what it is.
      const check = await checkStage({ ...stage, frozen: false, alwaysChanged: false }, lock.get(n), { params, hashPath, imageId: (s) => images.of(s) }, true);
      if (check.missingDeps.length) {
        throw new TdvError(
          'DEPS_MISSING',
          `stage "${n}": ${check.missingDeps.map(quotePath).join(', ')} ${check.missingDeps.length === 1 ? 'does' : 'do'} not exist, so there is nothing to record its outputs against; create ${check.missingDeps.length === 1 ? 'it' : 'them'} (\`tdv pull\` fetches tracked data, \`tdv repro\` makes stage outputs) and commit again`,
          {
            data: { stage: n, missing: check.missingDeps },
          },
        );
      }
      const absent = [...stage.outs, ...stage.metrics].filter((o) => repo.guard.lstat(o, stage.where) === undefined);
      if (absent.length) {
        throw new TdvError(
          'OUTS_MISSING',
          `stage "${n}": ${absent.map(quotePath).join(', ')} ${absent.length === 1 ? 'does' : 'do'} not exist; make ${absent.length === 1 ? 'it' : 'them'} first, or run the stage with \`tdv repro ${n}\``,
          {
            data: { stage: n, missing: absent },
          },
        );
      }
      if (check.reasons.length === 0) res.unchanged.push(n);
      else todo.push({ stage, inputs: check.inputs! });
    }
    // Phase 2: cache and record, one stage at a time (tdv.lock after each, as repro does).
    for (const { stage, inputs } of todo) {
      const outs: LockedPath[] = [];
      const metrics: LockedPath[] = [];
      for (const o of stage.outs) {
        const abs = repo.guard.resolve(o, stage.uncached?.has(o) ? 'read' : 'write', stage.where);
        if (stage.uncached?.has(o)) {
          // Kept in Git: hashed for tdv.lock, left as it is; a copy in the cache, as repro keeps one.
          const st = await hashWorkspace(repo, { abs, rel: o }, { write: 'store' });
          if (st.kind !== 'file' && st.kind !== 'dir') throw notData(stage, o);
          outs.push(st.kind === 'dir' ? { path: o, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: o, sha256: st.oid, size: st.size });
          removeGitignoreEntry(repo.guard, o);
          continue;
        }
        const st = await cacheTarget(repo, abs, o, { source: stage.where });
        outs.push(st.kind === 'dir' ? { path: o, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: o, sha256: st.oid, size: st.size });
        addGitignoreEntry(repo.guard, o);
      }
      for (const m of stage.metrics) {
        const st = await hashWorkspace(repo, { abs: repo.guard.resolve(m, 'read', stage.where), rel: m }, { write: 'store' });
        if (st.kind !== 'file') throw new TdvError('BAD_METRICS', `metrics ${quotePath(m)} of stage "${stage.name}" must be a file`, { data: { stage: stage.name, path: m } });
        metrics.push({ path: m, sha256: st.oid, size: st.size });
      }
      lock.set(stage.name, lockedStage(stage, inputs, outs, metrics));
      await writeLock(repo.root, lock);
      res.committed.push(stage.name);
    }
    repo.statCache.save();
    return res;
  });
}

function notData(stage: Stage, o: string): TdvError {
  return new TdvError('NOT_DATA', `output ${quotePath(o)} of stage "${stage.name}" is neither a file nor a directory; tdv records only those`, { data: { stage: stage.name, path: o } });
}

/** The image ID a Docker stage would run in now, resolved or built once per image (Docker only when needed). */
class ImageIds {
  private readonly ids = new Map<string, Promise<string>>();

  constructor(
    private readonly repo: Repo,
    private docker: (StageRunner & DockerImages) | undefined,
  ) {}

  of(stage: Stage): Promise<string | undefined> {
    if (!stage.image && !stage.build) return Promise.resolve(undefined);
    const key = stage.image ? `image:${stage.image}` : `build:${stage.build!.context}:${stage.build!.dockerfile ?? ''}`;
    let id = this.ids.get(key);
    if (!id) {
      id = (async () => {
        if (!this.docker) {
          const { DockerRunner } = await import('../stages/runners/docker.js');
          this.docker = new DockerRunner();
        }
        if (stage.image) return this.docker.resolveImage(stage.image);
        const b = stage.build!;
        return (await this.docker.buildImage(path.join(this.repo.root, b.context), { dockerfile: b.dockerfile })).id;
      })();
      this.ids.set(key, id);
    }
    return id;
  }
}
