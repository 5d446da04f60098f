// The temp-directory clean-up of the real config (run-tmp.ts as global setup,
// cleanup.ts as setup file) around leaks.fixture.ts, for test/e2e/tmp-cleanup.test.ts.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/helpers/tmp-fixture/*.fixture.ts'],
    pool: 'forks',
    globalSetup: ['./test/helpers/tmp-fixture/global-setup.ts'],
    setupFiles: ['./test/helpers/cleanup.ts'],
  },
});
