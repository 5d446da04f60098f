import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineage } from '../../src/repo/lineage.js';
import { Repo } from '../../src/repo/repo.js';
import { startServer } from '../../src/serve/server.js';
import { withRepo } from '../helpers/api.js';
import { pipelineRepo } from '../helpers/pipeline.js';
import { git, tdv, tmpDir, write } from '../helpers/repo.js';

// `tdv serve`'s /-/api/lineage: a dep inside an output directory whose manifest the
// cache lacks is "unknown" to tdv lineage; the server fetches the manifest from the
// remote (verified and kept) and answers with the comparison made.
const PIPELINE = `stages:
  features:
    cmd: mkdir -p feats && cp raw.csv feats/a.csv
    deps: [raw.csv]
    outs: [feats]
  train:
    cmd: cp feats/a.csv model.bin
    deps: [feats/a.csv]
    outs: [model.bin]
`;

describe('tdv serve: lineage', () => {
  it('fetches a directory manifest missing from the cache to compare a dep inside it', async () => {
    const dir = await pipelineRepo(PIPELINE, { 'raw.csv': 'x\n' });
    expect((await tdv(dir, 'repro', '-q')).code).toBe(0);
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', tmpDir('tdv-lineage-remote-'))).code).toBe(0);
    expect((await tdv(dir, 'push', '-q')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'run');
    const target = path.join(dir, 'model.bin');
    const feats = (await withRepo(dir, (r) => lineage(r, { target }))).stages[1]!.outs[0]!.sha256;
    const manifest = path.join(dir, '.tdv/cache/files/sha256', feats.slice(0, 2), feats.slice(2));
    fs.rmSync(manifest);
    expect((await withRepo(dir, (r) => lineage(r, { target, rev: 'HEAD' }))).stages[0]!.deps[0]!.status).toBe('unknown');
    const served = await startServer(await Repo.open(dir), { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${served.url}/-/api/lineage?rev=main&path=model.bin`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { rev: string; stages: { name: string; deps: { path: string; status: string }[] }[] };
      expect(body.rev).toBe('main');
      expect(body.stages[0]!.deps).toEqual([expect.objectContaining({ path: 'feats/a.csv', status: 'fresh' })]);
      expect(fs.existsSync(manifest)).toBe(true);
    } finally {
      await served.close();
    }
    // A file inside that output as the target: whether the output holds it needs the manifest too.
    fs.rmSync(manifest);
    const again = await startServer(await Repo.open(dir), { host: '127.0.0.1', port: 0 });
    try {
      const inside = (await (await fetch(`${again.url}/-/api/lineage?rev=main&path=feats/a.csv`)).json()) as { status: string; producers: string[] };
      expect(inside).toMatchObject({ status: 'fresh', producers: ['features'] });
      expect(fs.existsSync(manifest)).toBe(true);
      const absent = await fetch(`${again.url}/-/api/lineage?rev=main&path=feats/never.csv`);
      expect(absent.status).toBe(404);
    } finally {
      await again.close();
    }
    // Nothing in the workspace was written.
    write(dir, 'probe', '');
    expect((await git(dir, 'status', '--porcelain')).trim()).toBe('?? probe');
  });
});
