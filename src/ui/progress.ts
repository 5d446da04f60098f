import type { Writable } from 'node:stream';
import type { TransferProgress } from '../remote/transfer.js';
import { formatBytes } from './output.js';

/**
 * A transfer progress bar on a terminal: objects and bytes done, rate, ETA.
 * Drawn by cli-progress (loaded only when a terminal will show it); `finish()`
 * removes it so the one-line summary that follows stands alone.
 */
export async function progressBar(label: string, stream: Writable & { isTTY?: boolean }): Promise<TransferProgress & { finish(): void }> {
  const { default: cli } = await import('cli-progress');
  const started = Date.now();
  let objects = 0;
  let totalObjects = 0;
  let bytes = 0;
  let running = false;
  const bar = new cli.SingleBar(
    {
      stream,
      format: `${label} {bar} {percentage}% | {objects}/{totalObjects} objects | {done}/{size} | {rate} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 8,
      barsize: 24,
    },
    cli.Presets.shades_classic,
  );
  // Ctrl-C while the bar is drawn: put the cursor back, then die of the signal as usual (exit 130).
  const onSignal = (sig: NodeJS.Signals) => {
    if (running) bar.stop();
    running = false;
    process.kill(process.pid, sig);
  };
  const payload = () => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    return { objects, totalObjects, done: formatBytes(bytes), rate: `${formatBytes(bytes / secs)}/s` };
  };
  return {
    start(nObjects, nBytes) {
      totalObjects = nObjects;
      if (nObjects === 0) return;
      bar.start(Math.max(nBytes, 1), 0, { ...payload(), size: formatBytes(nBytes) });
      running = true;
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    },
    bytes(n) {
      bytes += n;
      if (running) bar.update(bytes, payload());
    },
    object() {
      objects++;
      if (running) bar.update(bytes, payload());
    },
    finish() {
      if (running) bar.stop();
      running = false;
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}
