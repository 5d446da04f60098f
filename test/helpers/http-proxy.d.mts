/** Types of http-proxy.mjs (the proxy itself is plain JavaScript, shared with scripts/bench.mjs). */
export declare const FAULT_KINDS: readonly ['status500', 'slowdown503', 'drop', 'delay', 'truncate', 'corrupt'];
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Body bytes of one HTTP method's requests (PUT, GET, HEAD, POST, DELETE...). */
export interface MethodStats {
  requests: number;
  /** Request-body bytes passed on to the server (uploads). */
  bytesUp: number;
  /** Response-body bytes passed on to the client (downloads). */
  bytesDown: number;
}

export interface FaultStats {
  requests: number;
  /** Faults injected, by kind. */
  faults: Record<FaultKind, number>;
  /** Requests the SDK sent again (attempt > 1). */
  sdkRetries: number;
  /** GETs of an object already fetched before in this phase, on a first SDK attempt: tdv's own re-downloads. */
  refetches: number;
  /** Request-body bytes passed on to the server, counted as they pass (headers not counted). */
  bytesUp: number;
  /** Response-body bytes passed on to the client, counted as they pass. */
  bytesDown: number;
  /** The same counts per HTTP method. */
  byMethod: Record<string, MethodStats>;
  /** With `record`: each request (method, path with query, Range header) and its body bytes. */
  log: RequestRecord[];
}

export interface RequestRecord {
  method: string;
  path: string;
  range: string | undefined;
  bytesUp: number;
  bytesDown: number;
}

/** A shaped link: bandwidth caps (bytes/s, 0 or absent: none) and a latency added to each request's and each response's start. */
export interface Link {
  /** Request bodies (uploads), all connections together. 4 Mbit/s = 500_000. */
  up?: number;
  /** Response bodies (downloads), all connections together. */
  down?: number;
  latencyMs?: number;
}

export interface FaultProxy {
  /** The endpoint to give tdv instead of the server's. */
  readonly url: string;
  /**
   * Another endpoint of the same proxy (same faults, same link, same 1-in-N counter) whose
   * requests are also counted apart, so two clients running at once can be told apart.
   */
  endpoint(tag: string): Promise<string>;
  /** The counts of one endpoint's requests. */
  statsOf(tag: string): FaultStats;
  /** Inject `kind` on one eligible request in `every` (none: no faults), at most `limit` times. */
  program(kind: FaultKind | undefined, every?: number, limit?: number): void;
  /** Shapes the link from now on (no argument: unshaped). */
  shape(link?: Link): void;
  readonly stats: FaultStats;
  /** Zeroes the counters (and forgets which objects were fetched). */
  reset(): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** How long a "delay" fault holds a request: longer than the client's socket timeout. */
  delayMs?: number;
  /** The link's shape from the start (see `shape`). */
  link?: Link;
  /** Keep a log of every request in the stats (`log`). */
  record?: boolean;
}

/** Starts a proxy in front of `upstream` (e.g. http://127.0.0.1:4568) on a free loopback port. */
export declare function startFaultProxy(upstream: string, opts?: FaultProxyOptions): Promise<FaultProxy>;
