import { describe, it } from 'vitest';

const warned = new Set<string>();

/**
 * `describe` for tests that need an outside service (`what`: "S3", "Docker").
 * Without it (`reason` says why) they skip, saying why once, except in CI
 * (CI=true), where they fail: a CI run that silently skipped them would pass
 * without testing the service at all.
 */
export function describeNeeding(what: string, reason: string | undefined, name: string, body: () => void): void {
  if (!reason) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it(`has ${what}`, () => {
        throw new Error(`${reason} (CI=true: ${what} tests must not be skipped)`);
      });
    });
    return;
  }
  if (!warned.has(what)) {
    warned.add(what);
    console.warn(`skipping ${what} tests: ${reason}`);
  }
  describe.skip(name, body);
}
