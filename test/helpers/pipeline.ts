import fs from 'node:fs';
import path from 'node:path';
import { generate } from '../../fixtures/bikeshare/generate.mjs';
import { newRepo } from './expect.js';
import { git, tdv, write } from './repo.js';

export const FIXTURE = path.resolve(import.meta.dirname, '../../fixtures/bikeshare/pipeline');

/**
 * A committed repo with the bike-share pipeline: raw data tracked with
 * `tdv add data`, scripts, params.yaml and tdv.yaml in Git.
 */
export async function bikeshareRepo(opts: { days?: number; trips?: number } = {}): Promise<string> {
  const dir = await newRepo();
  fs.cpSync(FIXTURE, dir, { recursive: true });
  generate(path.join(dir, 'data'), { days: opts.days ?? 31, trips: opts.trips ?? 40 });
  const r = await tdv(dir, 'add', 'data');
  if (r.code !== 0) throw new Error(r.stderr);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'bike-share data and pipeline');
  return dir;
}

/** A fresh repository with `tdv.yaml` (and any other files) committed to Git. */
export async function pipelineRepo(yaml: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await newRepo();
  write(dir, 'tdv.yaml', yaml);
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'pipeline');
  return dir;
}
