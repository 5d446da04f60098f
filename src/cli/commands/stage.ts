import type { Command } from 'commander';
import { type CliContext, examples } from '../context.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface StageAddFlags {
  name: string;
  deps?: string[];
  params?: string[];
  outs?: string[];
  outsNoCache?: string[];
  outsPersist?: string[];
  metrics?: string[];
  image?: string;
  wdir?: string;
  desc?: string;
  alwaysChanged?: boolean;
  force?: boolean;
}

/** `tdv stage add`. */
export function registerStage(program: Command, ctx: CliContext): void {
  const stage = program
    .command('stage')
    .description('edit the pipeline (tdv.yaml) from the command line')
    .addHelpText('after', examples('tdv stage add -n train -d data -o model.pkl python train.py'));
  stage
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
    )
    .action(async (command: string[], opts: StageAddFlags, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { stageAdd } = await import('../../repo/stage-add.js');
      // As everywhere in tdv, paths are relative to where you are: the stage runs there (or in
      // --wdir, itself relative to where you are), and tdv.yaml names it from the root.
      const wdir = repo.rel(ctx.resolve(opts.wdir ?? '.'));
      const res = await stageAdd(repo, { ...opts, cmd: command, wdir });
      if (out.json) out.data(res);
      else out.info(`${res.replaced ? 'Replaced' : 'Added'} stage "${res.name}" in tdv.yaml${res.created ? ' (created)' : ''}; \`tdv repro ${res.name}\` runs it.`);
    });
}
