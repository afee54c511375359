import { Agent, request } from 'node:http';

export interface LoadOptions {
  url: string;
  connections: number;
  rangeBytes: number;
  fileSizeBytes: number;
  durationMs: number;
  /** Hard cap on requests, so a run is bounded even if the clock misbehaves. */
  maxRequests: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  errorSamples: string[];
  bytes: number;
  elapsedMs: number;
  /** Time to the response headers, per successful request. */
  firstByteMs: number[];
}

/**
 * Closed-loop load: `connections` keep-alive connections, each sending the next Range request
 * as soon as the previous answer is fully read. Every answer must be 206 with the exact
 * Content-Range and length asked for; anything else is an error, counted and sampled.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const result: LoadResult = { requests: 0, errors: 0, errorSamples: [], bytes: 0, elapsedMs: 0, firstByteMs: [] };
  const slots = Math.floor(options.fileSizeBytes / options.rangeBytes);
  const started = performance.now();
  const deadline = started + options.durationMs;
  let issued = 0;
  const fail = (message: string) => {
    result.errors++;
    if (result.errorSamples.length < 5) result.errorSamples.push(message);
  };
  const one = (start: number): Promise<void> =>
    new Promise((resolve) => {
      const end = start + options.rangeBytes - 1;
      const sentAt = performance.now();
      const req = request(options.url, { agent, headers: { range: `bytes=${start}-${end}` } }, (res) => {
        const firstByteMs = performance.now() - sentAt;
        let received = 0;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.on('error', (error) => {
          fail(`response error: ${error.message}`);
          resolve();
        });
        res.on('end', () => {
          const expectedRange = `bytes ${start}-${end}/${options.fileSizeBytes}`;
          if (res.statusCode !== 206) fail(`status ${res.statusCode}`);
          else if (res.headers['content-range'] !== expectedRange) fail(`content-range ${res.headers['content-range']} (wanted ${expectedRange})`);
          else if (received !== options.rangeBytes) fail(`received ${received} bytes, wanted ${options.rangeBytes}`);
          else {
            result.requests++;
            result.bytes += received;
            result.firstByteMs.push(firstByteMs);
          }
          resolve();
        });
      });
      req.on('error', (error) => {
        fail(`request error: ${error.message}`);
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (performance.now() < deadline && issued < options.maxRequests) {
      issued++;
      await one(Math.floor(Math.random() * slots) * options.rangeBytes);
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  result.elapsedMs = performance.now() - started;
  agent.destroy();
  return result;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
