/**
 * Stage names: what tdv.yaml may call a stage (foreach and matrix add
 * `@key` to it). A module of its own, so the CLI checks a name given with
 * `-n` before it opens the repository, without loading the pipeline code.
 */
import { UsageError } from '../errors.js';

/** A stage name as written in tdv.yaml. */
export const STAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** What to do about a name STAGE_NAME refuses. */
export const STAGE_NAME_RULE = 'Use letters, digits, ".", "_" and "-", starting with a letter or digit (at most 64)';

/** Refuses a stage name given on the command line (`from`: the flag that gave it). */
export function checkStageNameArg(name: string, from: string): void {
  if (!STAGE_NAME.test(name)) throw new UsageError(`stage name ${JSON.stringify(name)} (from ${from}) is not allowed. ${STAGE_NAME_RULE}`);
}
