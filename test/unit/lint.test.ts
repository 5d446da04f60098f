import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

/** The guarded-fs messages ESLint reports for `code` as if it were the file `file`. */
async function violations(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return r!.messages.map((m) => `${m.line}: ${m.message}`);
}

describe('lint rule tdv/guarded-fs (eslint.config.js)', () => {
  it('catches every way of mutating the file system outside the guard', async () => {
    const code = [
      "import fs from 'node:fs';",
      "import fsp from 'node:fs/promises';",
      "import { writeFileSync } from 'node:fs';",
      "import fsx from 'fs';",
      "import { rmQuiet } from '../workspace/raw.js';",
      "fs.writeFileSync('a', 'b');",
      "fs.rmSync('a', { recursive: true });",
      "fs.renameSync('a', 'b');",
      "fs.chmodSync('a', 0o777);",
      "fs.symlinkSync('a', 'b');",
      "fs.linkSync('a', 'b');",
      "fs.mkdirSync('a');",
      "fs.copyFileSync('a', 'b');",
      "await fsp.unlink('a');",
      "await fs.promises.writeFile('a', 'b');",
      "fs.openSync('a', 'w');",
      "const m = await import('node:fs');",
      "fs.openSync('a', fs.constants.O_RDONLY | fs.constants.O_CREAT);",
      "fs.openSync('a', fs.constants.O_WRONLY);",
      "fs.openSync('a', flags);",
    ].join('\n');
    const got = await violations('src/repo/example.ts', code);
    // Line 1 and 2 are allowed imports; every other line is one violation.
    expect([...new Set(got.map((v) => Number(v.split(':')[0])))]).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });

  it('allows reads, and allows the guard and the object store to write', async () => {
    const reads =
      "import fs from 'node:fs';\nfs.readFileSync('a');\nfs.lstatSync('a');\nfs.openSync('a', 'r');\nfs.readdirSync('.');\nfs.openSync('a', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);\n";
    expect(await violations('src/repo/example.ts', reads)).toEqual([]);
    const writes = "import fs from 'node:fs';\nfs.writeFileSync('a', 'b');\nfs.rmSync('a');\n";
    expect(await violations('src/workspace/guard.ts', writes)).toEqual([]);
    expect(await violations('src/cache/store.ts', writes)).toEqual([]);
  });
});
