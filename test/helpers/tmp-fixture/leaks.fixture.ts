// Run by test/e2e/tmp-cleanup.test.ts (in a vitest of its own): makes temp
// directories every way the suite does, and one the way a careless test would.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { tmpDir } from '../repo.js';

beforeAll(() => {
  // Outside a test: removed after the file's last test (cleanup.ts).
  fs.writeFileSync(path.join(tmpDir('tdv-fx-hook-'), 'big'), 'x'.repeat(1000));
});

it('a test that cleans up', () => {
  fs.writeFileSync(path.join(tmpDir('tdv-fx-test-'), 'f'), 'x');
});

it('a test that forgets to', () => {
  fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-fx-leak-'));
});

it.runIf(process.env.FX_FAIL === '1')('a test that fails', () => {
  tmpDir('tdv-fx-failed-');
  expect('failed').toBe('on purpose');
});
