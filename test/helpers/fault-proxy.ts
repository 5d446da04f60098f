/**
 * The HTTP proxy the S3 tests put between tdv and the S3 test server: counts
 * (requests, upload and download bytes, per method), a shaped link (bandwidth
 * caps, latency) and injected faults. It lives in http-proxy.mjs, plain
 * JavaScript, so that scripts/bench.mjs runs the same code; its types are in
 * http-proxy.d.mts.
 */
export { FAULT_KINDS, startFaultProxy } from './http-proxy.mjs';
export type { FaultKind, FaultProxy, FaultProxyOptions, FaultStats, Link, MethodStats, RequestRecord } from './http-proxy.mjs';
