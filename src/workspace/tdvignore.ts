import path from 'node:path';
import { readTextOrUndefined } from '../util/fs.js';
import { isBlankYaml } from '../util/yaml.js';

export const TDVIGNORE = '.tdvignore';

/** Matches POSIX paths relative to the repo root; `isDir` lets "dir/" patterns match. */
export type IgnoreMatcher = (relFromRoot: string, isDir: boolean) => boolean;

/**
 * Loads the root `.tdvignore` (gitignore syntax). Returns undefined when it has
 * no patterns, so the common case loads no matcher at all.
 */
export async function loadTdvignore(root: string): Promise<IgnoreMatcher | undefined> {
  const text = readTextOrUndefined(path.join(root, TDVIGNORE), undefined, TDVIGNORE, { follow: false });
  if (text === undefined || isBlankYaml(text)) return undefined;
  const { default: ignore } = await import('ignore');
  const ig = ignore().add(text);
  return (rel, isDir) => ig.ignores(isDir ? `${rel}/` : rel);
}
