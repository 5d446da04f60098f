import fs from 'node:fs';
import { onTestFinished } from 'vitest';
import { LocalRemote } from '../../src/remote/local.js';
import { tmpDir } from '../helpers/repo.js';
import { remoteContract } from './remote.contract.js';

remoteContract('local', async () => {
  const remote = new LocalRemote('local', tmpDir('tdv-remote-'));
  onTestFinished(() => remote.close());
  return {
    remote,
    async corrupt(oid, bytes) {
      const file = remote.pathOf(oid);
      fs.chmodSync(file, 0o644); // objects are stored read-only
      fs.writeFileSync(file, bytes);
    },
  };
});
