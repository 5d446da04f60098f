import type { Guard } from './guard.js';

/** The .gitignore line for a tracked path, anchored to its directory: `/data.csv`. */
function lineFor(name: string): string {
  return `/${name.replace(/([*?[\\#!])/g, '\\$1').replace(/^(\s)|(\s)$/g, '\\$1$2')}`;
}

/** The `.gitignore` (relative to the guard's root) that ignores `rel`: the one in its directory. */
export function gitignoreFor(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '.gitignore' : `${rel.slice(0, i)}/.gitignore`;
}

function nameOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/**
 * Appends `/<name>` to the `.gitignore` beside `rel` (a path relative to the
 * guard's root) unless already there. For a directory, `/<name>/` is the same
 * rule to Git, so either counts: tdv never adds `/logs` under an `/logs/` of
 * its own or the user's (a file is not matched by `/<name>/`, so for a file
 * only `/<name>` counts). Returns true if it wrote. The `.gitignore` is a
 * control file: written only as a regular file, never through or over a
 * symlink.
 */
export function addGitignoreEntry(guard: Guard, rel: string): boolean {
  const file = gitignoreFor(rel);
  const text = guard.readControlFile(file) ?? '';
  const line = lineFor(nameOf(rel));
  const lines = text.split(/\r?\n/);
  if (lines.includes(line)) return false;
  if (lines.includes(`${line}/`) && guard.lstat(rel)?.isDirectory() === true) return false;
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const sep = text === '' || text.endsWith('\n') ? '' : eol;
  guard.writeControlFile(file, `${text}${sep}${line}${eol}`, { mode: (guard.lstat(file)?.mode ?? 0o644) & 0o7777 });
  return true;
}

/**
 * Removes the line tdv added for `rel`; deletes the .gitignore if nothing
 * else is left. Says what it did to the file.
 */
export function removeGitignoreEntry(guard: Guard, rel: string): 'edited' | 'deleted' | undefined {
  const file = gitignoreFor(rel);
  const text = guard.readControlFile(file);
  if (text === undefined) return undefined;
  const line = lineFor(nameOf(rel));
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r?\n/);
  if (!lines.includes(line)) return undefined;
  const kept = lines.filter((l) => l !== line);
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  if (kept.every((l) => l === '')) {
    guard.removeControlFile(file);
    return 'deleted';
  }
  guard.writeControlFile(file, `${kept.join(eol)}${eol}`, { mode: guard.lstat(file)!.mode & 0o7777 });
  return 'edited';
}
