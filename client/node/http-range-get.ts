import { Agent as HttpAgent, get as httpGet, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, get as httpsGet } from 'node:https';
import type { RangeGet } from '../http-filler.ts';

/** Keep-alive connections shared by every download in this process (idle ones do not hold it open). */
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 32 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 32 });

/**
 * Range GETs over node:http: the socket's own buffers are handed to the filler as they
 * arrive. fetch (undici) wraps every read in a web stream and a fresh Uint8Array, which cost
 * more main-thread time than the SHA-256 of the same bytes in bench/client.
 */
export const nodeRangeGet: RangeGet = (url, range, signal) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const isHttps = target.protocol === 'https:';
    if (!isHttps && target.protocol !== 'http:') {
      reject(new TypeError(`unsupported download URL scheme ${target.protocol}`));
      return;
    }
    const options = { agent: isHttps ? httpsAgent : httpAgent, headers: { range }, signal };
    const onResponse = (response: IncomingMessage) =>
      resolve({
        status: response.statusCode ?? 0,
        header: (name) => {
          const value = response.headers[name];
          return value === undefined ? null : String(value);
        },
        body: response,
        cancel: () => {
          request.destroy();
          return Promise.resolve();
        },
      });
    const request = isHttps ? httpsGet(target, options, onResponse) : httpGet(target, options, onResponse);
    request.once('error', reject);
  });
