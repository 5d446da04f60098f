import { inject } from 'vitest';
import { describeNeeding } from './needs.js';
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

/** `describe` for tests that need Docker: skips locally without it, fails under CI=true (see needs.ts). */
export function describeDocker(name: string, body: () => void): void {
  describeNeeding('Docker', dockerSkipReason(), name, body);
}
