import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openForWriting } from '../../src/cache/writers.js';
import { useTmpDirs } from '../helpers/tmp.js';
import { holder, stop } from '../helpers/writers.js';

const tmp = useTmpDirs();
const id = (f: string) => ({ dev: fs.statSync(f).dev, ino: fs.statSync(f).ino });

describe.runIf(process.platform === 'linux')('openForWriting', () => {
  it('finds the file another process holds open for writing, and only that one', async () => {
    const base = tmp();
    const held = path.join(base, 'held');
    const free = path.join(base, 'free');
    fs.writeFileSync(held, 'x');
    fs.writeFileSync(free, 'y');
    const child = await holder(held);
    try {
      const found = openForWriting([id(held), id(free)]);
      expect(found).toBeDefined();
      expect([...found!.keys()]).toEqual([`${id(held).dev}:${id(held).ino}`]);
      expect(found!.get(`${id(held).dev}:${id(held).ino}`)).toBe(child.pid);
    } finally {
      await stop(child);
    }
    expect(openForWriting([id(held)])!.size).toBe(0);
  });

  it('does not count the descriptors of this process itself', () => {
    const base = tmp();
    const f = path.join(base, 'f');
    fs.writeFileSync(f, 'z');
    const fd = fs.openSync(f, 'r+');
    try {
      expect(openForWriting([id(f)])!.size).toBe(0);
    } finally {
      fs.closeSync(fd);
    }
  });
});
