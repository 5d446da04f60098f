import type http from 'node:http';
import type { ServeContext } from './context.js';

/** The web view at `/` and its assets and JSON API under `/-/`. True when it answered the request. */
export async function handleWeb(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
  void ctx;
  void req;
  void res;
  return false;
}
