import { UsageError } from '../../errors.js';
import type { ConfigWrite, RunnerValue } from '../../repo/runner.js';
import { escapeLine, type Output } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';

function reportWrite(out: Output, w: ConfigWrite): void {
  if (w.gitignored) out.info('Added /config.local.yaml to .tdv/.gitignore so that Git never commits it.');
}

function fileName(local: boolean | undefined): string {
  return local ? '.tdv/config.local.yaml' : '.tdv/config.yaml';
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `KEY=VALUE` arguments as settings; a key given twice is a list. */
function parseSettings(pairs: readonly string[]): Record<string, RunnerValue> {
  const out: Record<string, RunnerValue> = Object.create(null) as Record<string, RunnerValue>;
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`"${p}" is not KEY=VALUE; write e.g. namespace=ml`);
    const k = p.slice(0, eq);
    const x = p.slice(eq + 1);
    const had = out[k];
    out[k] = had === undefined ? x : [...(Array.isArray(had) ? had : [had]), x];
  }
  return out;
}

const show = (x: unknown): string => escapeLine(typeof x === 'string' ? x : JSON.stringify(x));

export function registerRunner(program: Program, ctx: CliContext): void {
  const runner = program
    .command('runner')
    .description('add, list, change and remove runners: the machines (Docker hosts, Kubernetes clusters) stages can run on')
    .addHelpText(
      'after',
      examples('tdv runner add gpu docker --host ssh://me@gpu-box --default', 'tdv runner add cluster kubernetes --namespace ml', 'tdv runner list', 'tdv runner modify cluster namespace research'),
    );

  const add = runner
    .command('add')
    .description('add a runner: a type (docker, kubernetes) and its settings')
    .argument('<name>', 'name of the runner (letters, digits, ".", "_", "-"; not "local", which is this machine)')
    .argument('<type>', 'docker (Docker engines on other machines) or kubernetes (a Job per stage)')
    .argument('[settings...]', "the type's settings as KEY=VALUE (a key given twice makes a list)")
    .option('--host <url>', 'docker: a Docker host (ssh://user@host, tcp://host:2376, or a context name); repeat for a pool', collect)
    .option('--namespace <ns>', 'kubernetes: the namespace Jobs are created in')
    .option('--context <name>', 'kubernetes: the kubeconfig context to use')
    .option('--kubeconfig <file>', 'kubernetes: the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)')
    .option('-d, --default', 'also make it the default runner (core.runner)')
    .option('--local', 'write to .tdv/config.local.yaml (git-ignored) instead of .tdv/config.yaml')
    .option('-f, --force', 'replace an existing runner of that name')
    .addHelpText(
      'after',
      examples(
        'tdv runner add gpu docker --host ssh://me@gpu-box',
        'tdv runner add pool docker --host ssh://a --host ssh://b --default',
        'tdv runner add cluster kubernetes --namespace ml --context prod',
        'tdv runner add --local mine kubernetes kubeconfig=/home/me/.kube/lab',
      ),
    );
  ctx.action(add, async ({ out, repo, args: [name, type, pairs], opts }) => {
    const { addRunner } = await import('../../repo/runner.js');
    const settings = parseSettings(pairs);
    const flag = (k: string, x: RunnerValue | undefined) => {
      if (x === undefined) return;
      if (settings[k] !== undefined) throw new UsageError(`${k} is given both as --${k === 'hosts' ? 'host' : k} and as ${k}=...; give it once`);
      settings[k] = x;
    };
    flag('hosts', opts.host);
    flag('namespace', opts.namespace);
    flag('context', opts.context);
    flag('kubeconfig', opts.kubeconfig);
    const res = await addRunner(repo, { name, type, settings, makeDefault: opts.default, local: opts.local, force: opts.force });
    reportWrite(out, res);
    const where = opts.local ? ' in .tdv/config.local.yaml' : '';
    out.info(`${res.replaced ? 'Replaced' : 'Added'} runner ${res.name} (${res.type})${where}${res.isDefault ? ', the default' : ''}.`);
    if (opts.default && !res.isDefault) out.warn('.tdv/config.local.yaml sets another default runner, which wins; use `tdv runner default --local NAME`');
  });

  const list = runner
    .command('list')
    .description('list runners (local, this machine, and the configured ones) and their settings')
    .option('--json', 'print one JSON object')
    .addHelpText('after', examples('tdv runner list', 'tdv runner list --json'));
  ctx.action(list, async ({ repo, show: print }) => {
    const { listRunners } = await import('../../repo/runner.js');
    const runners = listRunners(repo);
    print({ default: runners.find((r) => r.isDefault)?.name ?? 'local', runners }, ({ runners: rs }, o) => {
      for (const r of rs) {
        o.info(`${escapeLine(r.name)}  ${r.type === 'local' ? 'local (this machine)' : r.type}${r.isDefault ? '  (default)' : ''}`);
        for (const [k, x] of Object.entries(r.settings)) o.info(`  ${escapeLine(k)}: ${show(x)}`);
      }
    });
  });

  const remove = runner
    .command('remove')
    .description('remove a runner from both config files (unsetting it as the default)')
    .argument('<name>', 'the runner')
    .option('--local', 'remove only its section in .tdv/config.local.yaml')
    .addHelpText('after', examples('tdv runner remove gpu', 'tdv runner remove --local cluster'));
  ctx.action(remove, async ({ out, repo, args: [name], opts }) => {
    const { removeRunner } = await import('../../repo/runner.js');
    const res = await removeRunner(repo, name, { local: opts.local });
    out.info(opts.local ? `Removed the settings of runner ${name} from .tdv/config.local.yaml.` : `Removed runner ${name}.`);
    if (res.unsetDefault) out.info('It was the default runner; stages without `runner:` run on this machine now.');
  });

  const byDefault = runner
    .command('default')
    .description('print, set or unset the default runner (local, this machine, unless set)')
    .argument('[name]', 'the runner to make the default (or local)')
    .option('--local', 'set it in .tdv/config.local.yaml (this clone only)')
    .option('--unset', 'remove the default')
    .addHelpText('after', examples('tdv runner default', 'tdv runner default gpu', 'tdv runner default --local local', 'tdv runner default --unset'));
  ctx.action(byDefault, async ({ out, repo, args: [name], opts }) => {
    const rc = await import('../../repo/runner.js');
    if (name === undefined && !opts.unset) {
      out.info(repo.config.core.runner ?? 'local');
      return;
    }
    const res = await rc.setDefaultRunner(repo, name, { local: opts.local, unset: opts.unset });
    reportWrite(out, res);
    if (name !== undefined) {
      out.info(res.changed ? `The default runner is now ${name}${opts.local ? ' (in .tdv/config.local.yaml)' : ''}.` : `${name} is already the default runner.`);
      if (res.default !== name) out.warn(`.tdv/config.local.yaml sets ${res.default} as the default, which wins; use --local to change it`);
    } else if (!res.changed) out.info(`No default runner was set in ${fileName(opts.local)}.`);
    else out.info(`Unset the default runner in ${fileName(opts.local)}; the default is now ${res.default}.`);
  });

  const modify = runner
    .command('modify')
    .description('set or unset one setting of a runner')
    .argument('<name>', 'the runner')
    .argument('<key>', "type, or a key of the runner's type (see `tdv runner add --help`)")
    .argument('[values...]', 'the new value (several make a list; [a, b] too); omit with --unset')
    .option('--local', 'write to .tdv/config.local.yaml')
    .option('--unset', 'remove the setting')
    .addHelpText('after', examples('tdv runner modify cluster namespace research', 'tdv runner modify pool hosts ssh://a ssh://b', 'tdv runner modify cluster context --unset'));
  ctx.action(modify, async ({ out, repo, args: [name, key, values], opts }) => {
    const { modifyRunner } = await import('../../repo/runner.js');
    const value = values.length === 0 ? undefined : values.length === 1 ? values[0]! : values;
    const res = await modifyRunner(repo, name, key, value, { local: opts.local, unset: opts.unset });
    reportWrite(out, res);
    const setting = `runner.${name}.${key}`;
    if (opts.unset) out.info(res.changed ? `Unset ${escapeLine(setting)} in ${fileName(opts.local)}.` : `${escapeLine(setting)} was not set in ${fileName(opts.local)}.`);
    else out.info(res.changed ? `Set ${escapeLine(setting)} = ${show(res.value)} in ${fileName(opts.local)}.` : `${escapeLine(setting)} is already ${show(res.value)}.`);
  });
}
