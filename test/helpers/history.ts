import fs from 'node:fs';
import path from 'node:path';
import { tripsCsv, weatherCsv } from '../../fixtures/bikeshare/generate.mjs';
import { manifest, newRepo } from './expect.js';
import { git, tdv, write } from './repo.js';

/** `tdv add` the paths, then commit everything; returns the new commit's id. */
export async function commitData(dir: string, msg: string, add: string[]): Promise<string> {
  if (add.length > 0) {
    const r = await tdv(dir, 'add', ...add);
    if (r.code !== 0) throw new Error(`tdv add ${add.join(' ')}: ${r.stderr}`);
  }
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', msg);
  return git(dir, 'rev-parse', 'HEAD');
}

export const day = (d: number) => `2024-07-${String(d).padStart(2, '0')}`;

/** The files of `data/` after day `d` of July: one trips CSV per day so far, and the weather up to that day. */
export function julyUpTo(d: number, trips = 20): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 1; i <= d; i++) files[`trips/${day(i)}.csv`] = tripsCsv(i, trips);
  files['weather.csv'] = weatherCsv(d);
  return files;
}

/**
 * The bike-share history: `tdv init` committed, then one commit per day of
 * July (`Trips of 2024-07-DD`) adding that day's trips and the weather so
 * far, tagged `july-end` on the 31st. Returns the repo and each day's commit.
 */
export async function julyHistory(days = 31): Promise<{ dir: string; commits: string[] }> {
  const dir = await newRepo();
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'Initialize tdv');
  const commits: string[] = [];
  for (let d = 1; d <= days; d++) {
    write(dir, `data/trips/${day(d)}.csv`, tripsCsv(d, 20));
    write(dir, 'data/weather.csv', weatherCsv(d));
    commits.push(await commitData(dir, `Trips of ${day(d)}`, ['data']));
  }
  if (days === 31) await git(dir, 'tag', 'july-end');
  return { dir, commits };
}

/** Every regular file under `dir`, relative, with its content (utf8). */
export function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) visit(path.join(d, e.name), r);
      else out[r] = fs.readFileSync(path.join(d, e.name), 'utf8');
    }
  };
  if (fs.existsSync(dir)) visit(dir, '');
  return out;
}

/**
 * A repository whose commit (tagged v1) tracks data/{a,b,sub/c}.csv and
 * model.bin; the workspace then edits a, deletes b, adds d and changes the
 * model. Returns the directory and v1's commit id.
 */
export async function editedSinceV1(): Promise<{ dir: string; v1: string }> {
  const dir = await newRepo();
  write(dir, 'data/a.csv', 'a1');
  write(dir, 'data/b.csv', 'b1');
  write(dir, 'data/sub/c.csv', 'c1');
  write(dir, 'model.bin', 'm1');
  const v1 = await commitData(dir, 'v1', ['data', 'model.bin']);
  await git(dir, 'tag', 'v1');
  write(dir, 'data/a.csv', 'a22');
  fs.rmSync(path.join(dir, 'data/b.csv'));
  write(dir, 'data/d.csv', 'dddd');
  write(dir, 'model.bin', 'm2');
  return { dir, v1 };
}

/** The manifest of `data` as editedSinceV1 commits it at v1. */
export function v1DataManifest(): ReturnType<typeof manifest> {
  return manifest([
    { relpath: 'a.csv', content: 'a1' },
    { relpath: 'b.csv', content: 'b1' },
    { relpath: 'sub/c.csv', content: 'c1' },
  ]);
}
