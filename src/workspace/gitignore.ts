import fs from 'node:fs';
import path from 'node:path';
import { readTextOrUndefined } from '../util/fs.js';
import { writeFileAtomicSync } from './raw.js';

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
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const sep = text === '' || text.endsWith('\n') ? '' : eol;
  writeFileAtomicSync(file, `${text}${sep}${line}${eol}`, (fs.statSync(file, { throwIfNoEntry: false })?.mode ?? 0o644) & 0o7777);
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
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r?\n/);
  if (!lines.includes(line)) return undefined;
  const kept = lines.filter((l) => l !== line);
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  if (kept.every((l) => l === '')) {
    fs.rmSync(file);
    return 'deleted';
  }
  writeFileAtomicSync(file, `${kept.join(eol)}${eol}`, fs.statSync(file).mode & 0o7777);
  return 'edited';
}
