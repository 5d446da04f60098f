/** Placeholder: implemented in its own change (issue 15). */
import * as v from 'valibot';
import { TdvError } from '../../errors.js';
import type { RunnerModule } from './registry.js';

export const runnerModule: RunnerModule = {
  configSchema: v.record(v.string(), v.unknown()),
  configKeys: {},
  create(cfg) {
    throw new TdvError('RUNNER_UNAVAILABLE', `runner ${cfg.name}: type ${cfg.type} is not built yet`);
  },
};
