import type { StageAddOptions } from '../../repo/stage-add.js';
import { type CliContext, examples, type FlagsOf, type Program } from '../context.js';
import { collect } from '../transfer.js';
import { checkStageNameArg } from '../../stages/names.js';

/** `tdv stage add`. */
export function registerStage(program: Program, ctx: CliContext): void {
  const stage = program
    .command('stage')
    .description('edit the pipeline (tdv.yaml) from the command line')
    .addHelpText('after', examples('tdv stage add -n train -d data -o model.pkl python train.py'));
  const add = stage
    .command('add')
    .description('write a stage into tdv.yaml without running it (`tdv repro` runs it)')
    .requiredOption('-n, --name <name>', 'stage name')
    .option('-d, --deps <path>', 'a file or directory the stage reads (repeatable)', collect)
    .option('-p, --params <keys>', 'params it reads: key1,key2 from params.yaml, or file.yaml:key1,key2 (repeatable)', collect)
    .option('-o, --outs <path>', 'an output, cached by tdv (repeatable)', collect)
    .option('-O, --outs-no-cache <path>', 'an output kept in Git, not cached (repeatable)', collect)
    .option('--outs-persist <path>', 'an output kept between runs, not deleted before the stage runs (repeatable)', collect)
    .option('-m, --metrics <path>', 'a metrics file, kept in Git (repeatable)', collect)
    .option('--image <ref>', 'run the command in this Docker image')
    .option('-w, --wdir <dir>', 'working directory (default: where you are); the paths above are relative to it')
    .option('--desc <text>', 'a description of the stage')
    .option('--always-changed', 'run the stage on every repro')
    .option('-f, --force', 'replace a stage of the same name')
    .option('--json', 'print one JSON object: name, replaced, created')
    .argument('<command...>', 'the command to run (quote it, or put it after --)')
    .addHelpText(
      'after',
      examples(
        'tdv stage add -n prepare -d data/raw -d prepare.py -o data/prepared python prepare.py',
        'tdv stage add -n train -d data/prepared -p train.lr,train.epochs -o model.pkl -m metrics.json -- python train.py --fast',
        "tdv stage add -n report -d metrics.json -O report.md 'sh report.sh > report.md'",
      ),
    );
  ctx.action(add, { check: (opts) => checkStageNameArg(opts.name, '-n') }, async ({ repo, args: [command], opts, resolve, show }) => {
    const { stageAdd } = await import('../../repo/stage-add.js');
    // As everywhere in tdv, paths are relative to where you are: the stage runs there (or in
    // --wdir, itself relative to where you are), and tdv.yaml names it from the root.
    const wdir = repo.rel(resolve(opts.wdir ?? '.'));
    const res = await stageAdd(repo, { ...(opts satisfies FlagsOf<StageAddOptions, typeof opts>), cmd: command, wdir });
    show(res, (r, out) => out.info(`${r.replaced ? 'Replaced' : 'Added'} stage "${r.name}" in tdv.yaml${r.created ? ' (created)' : ''}; \`tdv repro ${r.name}\` runs it.`));
  });
}
