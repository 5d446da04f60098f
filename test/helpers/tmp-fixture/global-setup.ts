import { useRunTmp } from '../run-tmp.js';

/** The run's own TMPDIR, as test/helpers/global-setup.ts sets it up (without its S3 server and Docker probe). */
export default function setup(): () => void {
  return useRunTmp();
}
