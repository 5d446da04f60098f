import { describe, inject, it } from 'vitest';
import { probeDocker } from './docker-probe.js';

export { TEST_IMAGE } from './docker-probe.js';

let probed: string | undefined | null = null;

/** Why the Docker tests cannot run, or undefined when they can (see global-setup.ts). */
export function dockerSkipReason(): string | undefined {
  try {
    const given = inject('dockerSkipReason');
    if (given !== undefined) return given || undefined;
  } catch {
    // not under vitest's globalSetup: probe here, once
  }
  if (probed === null) probed = probeDocker();
  return probed;
}

/** A Docker daemon and the test image are there. */
export function dockerAvailable(): boolean {
  return dockerSkipReason() === undefined;
}

let warned = false;

/**
 * `describe` for tests that need Docker and the test image. Without them they
 * skip, saying why once, except in CI (CI=true), where they fail: a CI run
 * that silently skipped them would pass without testing containers at all.
 */
export function describeDocker(name: string, body: () => void): void {
  const reason = dockerSkipReason();
  if (!reason) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has Docker and the test image', () => {
        throw new Error(`${reason} (CI=true: Docker tests must not be skipped)`);
      });
    });
    return;
  }
  if (!warned) {
    warned = true;
    console.warn(`skipping Docker tests: ${reason}`);
  }
  describe.skip(name, body);
}
