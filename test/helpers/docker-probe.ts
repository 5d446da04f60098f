/**
 * Whether the Docker tests can run: a docker CLI, a daemon it reaches, and the
 * test image (made by docker-image.sh, which this runs when the image is
 * missing). No vitest imports: globalSetup uses this too.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** The image the Docker tests run: busybox, imported from busybox-static by docker-image.sh. */
export const TEST_IMAGE = 'tdv-fixtures/busybox';
export const IMAGE_SCRIPT = path.resolve(import.meta.dirname, 'docker-image.sh');

/** Why Docker tests cannot run here, or undefined when they can. */
export function probeDocker(): string | undefined {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 30_000 });
  if (info.error) return `no docker CLI (${(info.error as NodeJS.ErrnoException).code ?? info.error.message}); install docker.io`;
  if (info.status !== 0) return `the Docker daemon is not reachable: ${firstLine(info.stderr)}; start it with \`dockerd\` (see .ci/run)`;
  const made = spawnSync('sh', [IMAGE_SCRIPT, TEST_IMAGE], { encoding: 'utf8', timeout: 120_000 });
  if (made.status !== 0) return `cannot create the test image ${TEST_IMAGE}: ${firstLine(made.stderr) || `exit ${made.status}`}`;
  return undefined;
}

function firstLine(s: string | undefined): string {
  return (
    (s ?? '')
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}
