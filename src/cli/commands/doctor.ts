import { NotARepoError, TdvError } from '../../errors.js';
import type { DoctorReport } from '../../repo/doctor.js';
import type { Repo } from '../../repo/repo.js';
import type { Output } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';

export function registerDoctor(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('doctor')
    .description('show versions (tdv, Node, Git, Docker), the platform, the cache (file system, link types that work) and remotes')
    .option('--json', 'print one JSON object')
    .addHelpText('after', '\nRuns inside or outside a repository; paste its output into bug reports (remote URLs are shown without credentials).\n' + examples('tdv doctor', 'tdv doctor --json'));
  ctx.action(cmd, { repo: false }, async ({ out, show }) => {
    let repo: Repo | { error: string } | undefined;
    try {
      repo = await ctx.openRepo(out);
    } catch (err) {
      // Outside a repository doctor still reports the rest; a repository it cannot open is a finding.
      if (err instanceof NotARepoError) repo = undefined;
      else if (err instanceof TdvError) repo = { error: err.message };
      else throw err;
    }
    const { doctor } = await import('../../repo/doctor.js');
    const report = await doctor(repo, { version: program.version() ?? 'unknown', env: ctx.io.env });
    show(report, render);
  });
}

function render(r: DoctorReport, out: Output): void {
  out.info(`tdv ${r.tdv}`);
  out.info(`Platform: ${r.platform}`);
  out.info(`Node: ${r.node}`);
  out.info(`Git: ${r.git.version ?? `not working (${r.git.error})`}`);
  const d = r.docker;
  out.info(`Docker: ${d.available ? `${d.server} (client ${d.client ?? '?'})` : `not available (${d.error})${d.client ? `; client ${d.client}` : ''}`}`);
  if (r.repo === undefined) {
    out.info('Repository: none here (run tdv doctor inside one to check its cache and remotes)');
    return;
  }
  if ('error' in r.repo) {
    out.info(`Repository: cannot be opened: ${r.repo.error}`);
    return;
  }
  const c = r.repo.cache;
  out.info(`Repository: ${q(r.repo.root)}`);
  out.info(`Cache: ${q(c.dir)} (${c.fs})`);
  const works = c.works ? (Object.keys(c.works) as (keyof typeof c.works)[]).map((t) => `${t} ${c.works![t] ? 'yes' : 'no'}`).join(', ') : `not probed: ${c.probeError}`;
  out.info(`Cache types: ${c.configured.join(',')}${c.effective.join(',') !== c.configured.join(',') ? ` (as root: ${c.effective.join(',')})` : ''}; in use: ${c.used ?? '?'}`);
  out.info(`Link types that work here: ${works}`);
  if (r.repo.remotes.length === 0) out.info('Remotes: none (tdv remote add <name> <url>)');
  else out.info(`Remotes: ${r.repo.remotes.map((m) => `${m.name}${m.default ? ' (default)' : ''} ${q(m.url)}${m.endpoint ? ` (endpoint ${q(m.endpoint)})` : ''}`).join(', ')}`);
}
