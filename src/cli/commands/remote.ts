import { TdvError } from '../../errors.js';
import type { ConfigWrite } from '../../repo/remote.js';
import { escapeLine, type Output } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';

/** Says so when config.local.yaml was not git-ignored yet and tdv fixed that. */
function reportWrite(out: Output, w: ConfigWrite): void {
  if (w.gitignored) out.info('Added /config.local.yaml to .tdv/.gitignore so that Git never commits it.');
}

function fileName(local: boolean | undefined): string {
  return local ? '.tdv/config.local.yaml' : '.tdv/config.yaml';
}

export function registerRemote(program: Program, ctx: CliContext): void {
  const remote = program
    .command('remote')
    .description('add, list, change and remove remotes: where push and pull send and fetch data')
    .addHelpText('after', examples('tdv remote add -d storage s3://my-bucket/tdv', 'tdv remote add backup /mnt/nas/tdv', 'tdv remote list', 'tdv remote modify storage region eu-west-1'));

  const add = remote
    .command('add')
    .description('add a remote: s3://bucket/prefix, file:///absolute/path, or a directory path')
    .argument('<name>', 'name of the remote (letters, digits, ".", "_", "-")')
    .argument('<url>', 's3://bucket[/prefix], file:///abs/path, or a path (a relative one is relative to this directory)')
    .option('-d, --default', 'also make it the default remote')
    .option('--local', 'write to .tdv/config.local.yaml (git-ignored) instead of .tdv/config.yaml')
    .option('-f, --force', 'replace an existing remote of that name')
    .addHelpText(
      'after',
      examples(
        'tdv remote add -d storage s3://my-bucket/projects/trips',
        'tdv remote add nas /mnt/nas/tdv-store',
        'tdv remote add sibling ../shared-store        # stored relative to the repository root',
        'tdv remote add --local scratch file:///tmp/tdv-scratch',
      ),
    );
  ctx.action(add, async ({ out, repo, args: [name, url], opts }) => {
    const { addRemote } = await import('../../repo/remote.js');
    const res = await addRemote(repo, { name, url, cwd: ctx.io.cwd, makeDefault: opts.default, local: opts.local, force: opts.force });
    reportWrite(out, res);
    const where = opts.local ? ' in .tdv/config.local.yaml' : '';
    out.info(`${res.replaced ? 'Replaced' : 'Added'} remote ${res.name} (${escapeLine(res.url)})${where}${res.isDefault ? ', the default' : ''}.`);
    if (opts.default && !res.isDefault) out.warn('.tdv/config.local.yaml sets another default remote, which wins; use `tdv remote default --local NAME`');
  });

  const list = remote
    .command('list')
    .description('list remotes, their urls and settings (credentials masked)')
    .option('--json', 'print one JSON object')
    .addHelpText('after', examples('tdv remote list', 'tdv remote list --json'));
  ctx.action(list, async ({ repo, show }) => {
    const { listRemotes } = await import('../../repo/remote.js');
    show({ default: repo.config.core.remote ?? null, remotes: listRemotes(repo) }, ({ remotes }, out) => {
      if (remotes.length === 0) out.info('No remotes. Add one with `tdv remote add NAME URL`.');
      for (const r of remotes) {
        out.info(`${escapeLine(r.name)}  ${escapeLine(r.url)}${r.isDefault ? '  (default)' : ''}`);
        for (const [k, v] of Object.entries(r.options)) out.info(`  ${escapeLine(k)}: ${escapeLine(String(v))}`);
      }
    });
  });

  const remove = remote
    .command('remove')
    .description('remove a remote from both config files (unsetting it as the default)')
    .argument('<name>', 'the remote')
    .option('--local', 'remove only its section in .tdv/config.local.yaml (overrides, credentials)')
    .addHelpText('after', examples('tdv remote remove backup', 'tdv remote remove --local storage'));
  ctx.action(remove, async ({ out, repo, args: [name], opts }) => {
    const { removeRemote } = await import('../../repo/remote.js');
    const res = await removeRemote(repo, name, { local: opts.local });
    out.info(opts.local ? `Removed the settings of remote ${name} from .tdv/config.local.yaml.` : `Removed remote ${name}.`);
    if (res.unsetDefault) out.info(`It was the default remote; there is no default now.`);
  });

  const byDefault = remote
    .command('default')
    .description('print, set or unset the default remote')
    .argument('[name]', 'the remote to make the default')
    .option('--local', 'set it in .tdv/config.local.yaml (this clone only)')
    .option('--unset', 'remove the default')
    .addHelpText('after', examples('tdv remote default', 'tdv remote default storage', 'tdv remote default --local nas', 'tdv remote default --unset'));
  ctx.action(byDefault, async ({ out, repo, args: [name], opts }) => {
    const rc = await import('../../repo/remote.js');
    if (name === undefined && !opts.unset) {
      const d = rc.getDefaultRemote(repo);
      if (!d) throw new TdvError('NO_DEFAULT_REMOTE', 'no default remote is set; set one with `tdv remote default NAME`');
      if (!d.configured) out.warn(`the default remote "${d.name}" is not configured; add it with \`tdv remote add ${d.name} URL\``);
      out.info(d.name);
      return;
    }
    const res = await rc.setDefaultRemote(repo, name, { local: opts.local, unset: opts.unset });
    reportWrite(out, res);
    if (name !== undefined) {
      out.info(res.changed ? `The default remote is now ${name}${opts.local ? ' (in .tdv/config.local.yaml)' : ''}.` : `${name} is already the default remote.`);
      if (res.default !== name) out.warn(`.tdv/config.local.yaml sets ${res.default} as the default, which wins; use --local to change it`);
    } else if (!res.changed) out.info(`No default remote was set in ${fileName(opts.local)}.`);
    else out.info(res.default ? `Unset the default in ${fileName(opts.local)}; ${res.default} remains the default (from ${fileName(!opts.local)}).` : 'Unset the default remote.');
  });

  const modify = remote
    .command('modify')
    .description('set or unset one setting of a remote')
    .argument('<name>', 'the remote')
    .argument('<key>', 'url, endpointurl, region, profile, force_path_style, checksum, jobs, layout, chunking, compression, limit_rate, access_key_id, secret_access_key')
    .argument('[value]', 'the new value (omit with --unset)')
    .option('--local', 'write to .tdv/config.local.yaml (required for access_key_id and secret_access_key)')
    .option('--unset', 'remove the setting')
    .addHelpText(
      'after',
      examples(
        'tdv remote modify storage endpointurl http://127.0.0.1:9000',
        'tdv remote modify storage force_path_style true',
        'tdv remote modify storage jobs 16',
        'tdv remote modify storage limit_rate 4M   # bytes per second, as curl --limit-rate',
        'tdv remote modify storage profile research',
        'tdv remote modify storage secret_access_key "$SECRET" --local',
        'tdv remote modify storage region --unset',
      ),
    );
  ctx.action(modify, async ({ out, repo, args: [name, key, value], opts }) => {
    const { modifyRemote } = await import('../../repo/remote.js');
    const res = await modifyRemote(repo, name, key, value, { local: opts.local, unset: opts.unset, cwd: ctx.io.cwd });
    reportWrite(out, res);
    const setting = `remote.${name}.${key}`;
    if (opts.unset) out.info(res.changed ? `Unset ${setting} in ${fileName(opts.local)}.` : `${setting} was not set in ${fileName(opts.local)}.`);
    else out.info(res.changed ? `Set ${escapeLine(setting)} = ${escapeLine(String(res.value))} in ${fileName(opts.local)}.` : `${escapeLine(setting)} is already ${escapeLine(String(res.value))}.`);
  });
}
