import fs from 'node:fs';
import path from 'node:path';
import { readTextOrUndefined, writeFileAtomicSync } from '../util/fs.js';

/** The .gitignore line for a tracked path, anchored to its directory: `/data.csv`. */
function lineFor(name: string): string {
  return `/${name.replace(/([*?[\\#!])/g, '\\$1').replace(/^(\s)|(\s)$/g, '\\$1$2')}`;
}

/** Appends `/<name>` to `<dir>/.gitignore` unless already there. Returns true if it wrote. */
export function addGitignoreEntry(dir: string, name: string): boolean {
  const file = path.join(dir, '.gitignore');
  const text = readTextOrUndefined(file) ?? '';
  const line = lineFor(name);
  if (text.split(/\r?\n/).includes(line)) return false;
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  writeFileAtomicSync(file, `${text}${sep}${line}\n`, fs.statSync(file, { throwIfNoEntry: false })?.mode ?? 0o644);
  return true;
}

/**
 * Removes the line tdv added for `name`; deletes the .gitignore if nothing
 * else is left. Says what it did to the file.
 */
export function removeGitignoreEntry(dir: string, name: string): 'edited' | 'deleted' | undefined {
  const file = path.join(dir, '.gitignore');
  const text = readTextOrUndefined(file);
  if (text === undefined) return undefined;
  const line = lineFor(name);
  const lines = text.split(/\r?\n/);
  if (!lines.includes(line)) return undefined;
  const kept = lines.filter((l) => l !== line);
  const rest = kept.join('\n').replace(/^\n+|\n+$/g, '');
  if (rest === '') {
    fs.rmSync(file);
    return 'deleted';
  }
  writeFileAtomicSync(file, `${rest}\n`);
  return 'edited';
}
