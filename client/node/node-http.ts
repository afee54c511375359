import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ApiRequest } from '../session-client.ts';

/**
 * The Node runtime's API requests: node:http(s) with keep-alive, shared by every download in
 * the process (idle connections do not hold it open). Not fetch: Node's fetch loads undici,
 * which costs ~44 MB of RSS before the first byte (a `peerfill get` of a tiny file peaked
 * at 109 MB with it). Range GETs, the bulk of the bytes, go through http1-range-get.ts.
 */
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 32 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 32 });
/** No byte for this long, connecting or answering, ends an API request (a hung server must not hang `get`); `get --timeout` sets it. */
export const DEFAULT_API_TIMEOUT_MS = 15_000;

function send(url: string, options: RequestOptions, body: string | undefined, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const isHttps = target.protocol === 'https:';
    if (!isHttps && target.protocol !== 'http:') {
      reject(new TypeError(`unsupported URL scheme ${target.protocol}`));
      return;
    }
    const withAgent = { ...options, agent: isHttps ? httpsAgent : httpAgent, timeout: timeoutMs };
    const request = isHttps ? httpsRequest(target, withAgent, resolve) : httpRequest(target, withAgent, resolve);
    request.once('error', reject);
    request.once('timeout', () => request.destroy(Object.assign(new Error(`no answer for ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT', timeoutMs })));
    request.end(body);
  });
}

/**
 * Small JSON API requests (sessions, manifests, the catalog): the body is read whole. No byte
 * for `timeoutMs`, connecting or answering, fails the request with ETIMEDOUT.
 */
export function createNodeApiRequest(timeoutMs = DEFAULT_API_TIMEOUT_MS): ApiRequest {
  return async (url, init = {}) => {
    const body = init.body;
    const headers = { ...init.headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) };
    const response = await send(url, { method: init.method ?? 'GET', headers, signal: init.signal }, body, timeoutMs);
    const pieces: Buffer[] = [];
    for await (const piece of response) pieces.push(piece as Buffer);
    return { status: response.statusCode ?? 0, text: Buffer.concat(pieces).toString('utf8') };
  };
}

/** API requests with the default timeout. */
export const nodeApiRequest: ApiRequest = createNodeApiRequest();
