/**
 * vitest setup file (runs in every test file's context): after the file's
 * last test, removes the temporary directories its hooks and describe bodies
 * made with tmpDir() (test/helpers/tmp.ts). Inside a test, tmpDir() removes
 * its directory when the test ends; outside one there is no test to hang that
 * on, and a process 'exit' handler does not run in vitest's forked workers.
 * Registered first, this afterAll runs after the file's own afterAll hooks
 * (vitest runs after-hooks in reverse order), which may still use the directories.
 */
import { afterAll, type RunnerTask, type RunnerTestFile, type RunnerTestSuite } from 'vitest';
import { removeFileScopedDirs } from './tmp.js';

const failedIn = (t: RunnerTask | RunnerTestSuite | RunnerTestFile): boolean => t.result?.state === 'fail' || ('tasks' in t && t.tasks.some(failedIn));

// vitest requires a destructuring pattern for the context argument, hence `{}`.
afterAll(({}, suite) => removeFileScopedDirs(failedIn(suite)));
