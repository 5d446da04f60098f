import type { StopSignal } from '../errors.js';

const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Signals turned into an abort (see `stopOnSignals`). */
export interface SignalStop {
  /** Aborted by the first of SIGINT, SIGTERM or SIGHUP. */
  signal: AbortSignal;
  /** The signal that came first, if any. */
  stoppedBy(): StopSignal | undefined;
  /** Stops listening (the default handlers apply again). */
  release(): void;
}

/**
 * Ctrl-C, a kill (CI cancel, `timeout`) or a closed terminal aborts the work
 * instead of killing tdv at once, so what it started (a stage's process
 * group, temp files) is stopped and cleaned up before it exits 130.
 */
export function stopOnSignals(): SignalStop {
  const abort = new AbortController();
  let stoppedBy: StopSignal | undefined;
  const onSignal = (sig: StopSignal) => {
    stoppedBy ??= sig;
    abort.abort();
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  return {
    signal: abort.signal,
    stoppedBy: () => stoppedBy,
    release: () => {
      for (const sig of STOP_SIGNALS) process.removeListener(sig, onSignal);
    },
  };
}
