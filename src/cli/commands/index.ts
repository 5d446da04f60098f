import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerAdd } from './add.js';
import { registerCheckout } from './checkout.js';
import { registerDag } from './dag.js';
import { registerDiff } from './diff.js';
import { registerDoctor } from './doctor.js';
import { registerFetch } from './fetch.js';
import { registerFsck } from './fsck.js';
import { registerGc } from './gc.js';
import { registerInit } from './init.js';
import { registerInstall } from './install.js';
import { registerLog } from './log.js';
import { registerMergeDriver } from './merge-driver.js';
import { registerMetrics } from './metrics.js';
import { registerMv } from './mv.js';
import { registerPull } from './pull.js';
import { registerPush } from './push.js';
import { registerRemote } from './remote.js';
import { registerRemove } from './remove.js';
import { registerRepro } from './repro.js';
import { registerStatus } from './status.js';
import { registerUnprotect } from './unprotect.js';

/** Every command, in the order `tdv --help` lists them. */
export function registerCommands(program: Command, ctx: CliContext): void {
  registerInit(program, ctx);
  registerAdd(program, ctx);
  registerStatus(program, ctx);
  registerCheckout(program, ctx);
  registerDiff(program, ctx);
  registerLog(program, ctx);
  registerRepro(program, ctx);
  registerDag(program, ctx);
  registerMetrics(program, ctx);
  registerPush(program, ctx);
  registerFetch(program, ctx);
  registerPull(program, ctx);
  registerRemove(program, ctx);
  registerMv(program, ctx);
  registerUnprotect(program, ctx);
  registerGc(program, ctx);
  registerFsck(program, ctx);
  registerRemote(program, ctx);
  registerInstall(program, ctx);
  registerMergeDriver(program, ctx);
  registerDoctor(program, ctx);
}
