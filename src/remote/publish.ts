import fs from 'node:fs';
import { errnoCode } from '../errors.js';
import { tmpSuffix } from '../util/fs.js';
import { rmQuiet } from '../workspace/raw.js';
import { assertObjectFile } from '../cache/store.js';

/**
 * The pool's `publish` task (cache/tasks.ts): copies a cache object into a
 * directory remote's object directory, a temp name then a rename. A failure
 * is returned as "CODE message" (empty on success), not thrown, so one bad
 * object does not stop the batch. Beside the directory remote (local.ts),
 * which imports the pool: the task cannot live there without an import cycle.
 * Runs on both of the pool's threads.
 */
export function publishTask(objectsDir: string): (item: [from: string, oid: string]) => string {
  const made = new Set<string>();
  const flags = fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE;
  return ([from, oid]) => {
    const dir = `${objectsDir}/${oid.slice(0, 2)}`;
    const tmp = `${dir}/.tmp.${tmpSuffix()}`;
    try {
      assertObjectFile(from); // a FIFO in the cache would block the copy forever
      if (!made.has(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      try {
        fs.copyFileSync(from, tmp, flags);
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') rmQuiet(tmp); // EEXIST: another writer's temp file, not ours
        throw err;
      }
      fs.renameSync(tmp, `${dir}/${oid.slice(2)}`);
      return '';
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') rmQuiet(tmp);
      return `${errnoCode(err) ?? 'EIO'} ${(err as Error).message}`;
    }
  };
}
