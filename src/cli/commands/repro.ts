import { InterruptedError, TdvError } from '../../errors.js';
import { stopOnSignals } from '../signals.js';
import type { ItemCounts, ReproEvent, ReproOptions, ReproResult } from '../../repo/repro.js';
import { escapeLine, type Output, plural } from '../../ui/output.js';
import { type CliContext, examples, type FlagsOf, parseJobs, type Program } from '../context.js';
import { q } from '../render.js';
import { progressFor } from '../transfer.js';
import type { ProgressBar } from '../../ui/progress.js';

/** The signals that stop `repro` cleanly (a second one changes nothing: the stop is under way). */

export function registerRepro(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('repro')
    .description('run the pipeline stages (tdv.yaml) whose inputs changed, and record them in tdv.lock')
    .argument('[stages...]', 'stages to bring up to date, with what they depend on (default: all)')
    .option('-f, --force', 'run the selected stages even if nothing changed')
    .option('--dry', 'print what would run and why, run nothing')
    .option('-j, --jobs <n>', 'stages to run at once (default: number of cores)', parseJobs)
    .option('-k, --keep-going', 'after a failure, go on with the stages that do not depend on it')
    .option('--downstream', 'with stage names: run them and everything downstream instead of upstream')
    .option('--no-run-cache', 'always run changed stages, never restore outputs of an identical earlier run')
    .option('--pull', 'first fetch from the remote the tracked inputs and recorded outputs the workspace lacks, and the run-cache')
    .option('-r, --remote <name>', 'the remote --pull fetches from and runs elsewhere push their run-cache to (default: the default remote)')
    .option('--runner <name>', 'run every selected stage on this runner (`tdv runner list`; local: this machine), whatever tdv.yaml and core.runner say')
    .option('--no-push-runs', 'after stages ran on another runner, do not push their run-cache to the remote')
    .option('--json', 'print one JSON object: ran, restored, skipped, failed, blocked (and plan with --dry)')
    .addHelpText('after', examples('tdv repro', 'tdv repro --dry', 'tdv repro --pull', 'tdv repro report -j 4', 'tdv repro sales --downstream --force'));
  ctx.action(cmd, async ({ out, repo, args: [stages], opts }) => {
    const { reproduce } = await import('../../repo/repro.js');
    const progress = opts.dry ? undefined : await progressFor(out, 'repro', 'stages');
    const printer = new StagePrinter(out, progress);
    // Ctrl-C, a kill (CI cancel, `timeout`) or a closed terminal stops the running stages:
    // each runs in its own process group, which the signal does not reach by itself, so
    // without this they would go on writing into the workspace after tdv exited.
    // Finished stages stay recorded.
    const stop = stopOnSignals();
    let res: ReproResult;
    try {
      res = await reproduce(repo, { ...(opts satisfies FlagsOf<ReproOptions, typeof opts>), stages, signal: stop.signal, onEvent: (e) => printer.event(e), progress });
    } finally {
      progress?.finish();
      stop.release();
    }
    const stoppedBy = stop.stoppedBy();
    if (out.json) out.data(res);
    summarize(out, res, opts.dry === true);
    if (stoppedBy) {
      const what = stoppedBy === 'SIGINT' ? 'interrupted' : `stopped by ${stoppedBy}`;
      throw new InterruptedError(`${what}; stages that finished are recorded in tdv.lock, the others were not`, stoppedBy);
    }
    if (res.failed.length) {
      throw new TdvError(
        'STAGE_FAILED',
        `${plural(res.failed.length, 'stage')} failed: ${res.failed.map((f) => f.stage).join(', ')}${res.blocked.length ? `; not run: ${res.blocked.join(', ')}` : ''}`,
      );
    }
  });
}

function summarize(out: Output, res: ReproResult, dry: boolean): void {
  if (dry) {
    const n = res.plan?.filter((p) => p.reasons.length).length ?? 0;
    out.info(n ? `${plural(n, 'stage')} would run.` : 'Pipeline is up to date; nothing would run.');
    return;
  }
  const parts = [`Ran ${plural(res.ran.length, 'stage')}`];
  if (res.restored.length) parts.push(`restored ${res.restored.length} from the run-cache`);
  parts.push(`${res.skipped.length} unchanged`);
  if (res.failed.length) parts.push(`${res.failed.length} failed`);
  if (res.blocked.length) parts.push(`${res.blocked.length} not run`);
  if (!res.ran.length && !res.restored.length && !res.failed.length && !res.blocked.length) out.info('Pipeline is up to date.');
  else out.info(`${parts.join(', ')}.`);
}

/** `10 of 100,010 items ran; 100,000 unchanged, 3 from the run-cache, 2 removed`. */
function itemsLine(c: ItemCounts): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const parts = [`${n(c.ran)} of ${n(c.items)} item${c.items === 1 ? '' : 's'} ran`];
  const rest = [c.unchanged && `${n(c.unchanged)} unchanged`, c.restored && `${n(c.restored)} from the run-cache`, c.dropped && `${n(c.dropped)} gone or changed`].filter(Boolean);
  return rest.length ? `${parts[0]}; ${rest.join(', ')}` : parts[0]!;
}

/** Prints stage events; output of parallel stages goes line by line, prefixed by the stage name. */
class StagePrinter {
  private readonly partial = new Map<string, string>();

  constructor(
    private readonly out: Output,
    private readonly bar?: ProgressBar,
  ) {}

  /** Whether stage output reaches the terminal as it comes (`info` lines are not silenced). */
  private get live(): boolean {
    return !this.out.quiet && !this.out.json;
  }

  event(e: ReproEvent): void {
    const p = this.out.paint;
    // Lines go above the progress bar, which is drawn again under them.
    this.bar?.clear();
    switch (e.type) {
      case 'plan':
        if (e.frozen) this.out.info(`${p.dim('frozen')} ${e.stage}: not run (\`tdv unfreeze ${e.stage.replace(/@.*/s, '')}\` to run it again)`);
        else
          this.out.info(
            e.reasons.length
              ? `${p.yellow('would run')} ${e.stage}: ${escapeLine(e.reasons.join('; '))}${e.items ? ` (${e.items.ran.toLocaleString('en-US')} of ${e.items.items.toLocaleString('en-US')} item${e.items.items === 1 ? '' : 's'})` : ''}`
              : `${p.dim('up to date')} ${e.stage}`,
          );
        break;
      case 'source':
        this.out.info(`${e.dry ? p.yellow('would update') : p.green('updated')} ${q(e.pointer)}: ${q(e.path)} changed${e.dry ? '' : '; commit the pointer with Git'}`);
        break;
      case 'pulled':
        this.out.info(`Pulled ${plural(e.files, 'file')} (tracked inputs and recorded outputs) and ${plural(e.runs, 'run record')}.`);
        break;
      case 'skip':
        if (e.frozen) this.out.info(`${p.dim('frozen')} ${e.stage}: not run`);
        else this.out.debug(`${e.stage}: unchanged`);
        break;
      case 'debug':
        this.out.debug(`${e.stage}: ${e.line}`);
        break;
      case 'start':
        this.out.info(`${p.bold('running')} ${e.stage}${e.where === 'docker' ? ' (docker)' : e.runner ? ` (on ${escapeLine(e.runner)})` : ''}: ${escapeLine(e.reasons.join('; '))}`);
        break;
      case 'output': {
        const text = (this.partial.get(e.stage) ?? '') + e.chunk.toString('utf8');
        const lines = text.split('\n');
        this.partial.set(e.stage, lines.pop()!);
        for (const l of lines) this.out.info(`${p.dim(`${e.stage} |`)} ${l}`);
        break;
      }
      case 'restored':
        this.out.info(`${p.green('restored')} ${e.stage} from the run-cache (same command, image, deps and params ran before)`);
        break;
      case 'done':
        this.flush(e.stage);
        this.out.info(
          `${p.green('done')} ${e.stage} in ${e.seconds.toFixed(1)} s${e.runner ? ` on ${escapeLine(e.runner)} (${escapeLine(e.where ?? '?')})` : ''}${e.items ? `: ${itemsLine(e.items)}` : ''}`,
        );
        break;
      case 'failed':
        this.flush(e.stage);
        this.out.error(e.message);
        // The stage's output was shown line by line as it ran: its tail again would print the
        // same lines twice. Only when it was not shown (--json) does the tail stand in for it.
        if (!this.live) for (const l of e.logTail) this.out.warn(`${e.stage} | ${l}`);
        break;
    }
  }

  private flush(stage: string): void {
    const rest = this.partial.get(stage);
    if (rest) this.out.info(`${this.out.paint.dim(`${stage} |`)} ${rest}`);
    this.partial.delete(stage);
  }
}
