/**
 * The reaper process (see stages/reaper.ts): started by `tdv repro` in its
 * own session, it reads lines from its stdin, a pipe from tdv:
 *
 *   register <id> <json {action, start?}>   something tdv started, and how to stop it
 *   done <id>                               stopped or finished by tdv itself
 *   bye                                     tdv is finishing normally
 *
 * When the pipe closes without `bye` (tdv was SIGKILLed, OOM-killed or
 * crashed: the kernel closes its end either way), it carries out every
 * action registered and not done, all at once, and exits. Its own stdout and
 * stderr are /dev/null and its cwd is `/`: it holds nothing of tdv's open.
 *
 * Bundled as its own entry (dist/bundle/reaper-child.js) that loads only
 * Node's built-ins.
 */
import type { CleanupAction } from './job.js';
import { carryOut } from './reap-actions.js';

const pending = new Map<string, { action: CleanupAction; start?: string }>();
let bye = false;
let buf = '';

function line(l: string): void {
  const sp = l.indexOf(' ');
  const verb = sp < 0 ? l : l.slice(0, sp);
  const rest = sp < 0 ? '' : l.slice(sp + 1);
  if (verb === 'bye') bye = true;
  else if (verb === 'done') pending.delete(rest);
  else if (verb === 'register') {
    const sp2 = rest.indexOf(' ');
    try {
      const entry = JSON.parse(rest.slice(sp2 + 1)) as { action: CleanupAction; start?: string };
      if (sp2 > 0 && entry && typeof entry.action === 'object') pending.set(rest.slice(0, sp2), entry);
    } catch {
      // a torn line: tdv died mid-write; what it named is in the journal for the next run
    }
  }
}

async function finish(): Promise<void> {
  if (!bye) await Promise.all([...pending.values()].map((e) => carryOut(e.action, { start: e.start })));
  process.exit(0);
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buf += chunk;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    line(buf.slice(0, i));
    buf = buf.slice(i + 1);
  }
});
process.stdin.on('end', () => void finish());
process.stdin.on('error', () => void finish());
