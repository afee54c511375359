import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpFiller, type RangeGet } from '../../client/http-filler.ts';
import { http1RangeGet } from '../../client/node/http1-range-get.ts';
import { verifyChunk } from '../../client/verify.ts';
import { PfError, chunkRange } from '../../protocol/index.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;
let server: FakeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

let rangeGet: RangeGet | undefined;

function filler(s: FakeServer, urls: { current: string }, extra: Partial<ConstructorParameters<typeof HttpFiller>[0]> = {}) {
  return new HttpFiller({
    rangeGet,
    manifest: s.manifest,
    getUrl: () => urls.current,
    refreshUrl: async () => {
      urls.current = `${s.url}/d/${s.manifest.file_id}?v=2`;
      return urls.current;
    },
    retryBaseMs: 1,
    retryMaxMs: 5,
    maxAttempts: 3,
    ...extra,
  });
}

// Every case over both transports: fetch (browsers) and the Node runtime's HTTP/1.1 client.
describe.each([
  ['fetch', undefined],
  ['HTTP/1.1 into chunk buffers (Node)', http1RangeGet],
])('HttpFiller over %s', (_name, transport) => {
  beforeEach(() => {
    rangeGet = transport;
  });
  it('coalesces adjacent chunks into one Range request and delivers each chunk verified', async () => {
    const bytes = testBytes(CHUNK * 5 + 1000);
    server = await startFakeServer({ bytes, chunkSize: CHUNK });
    const got: number[] = [];
    await filler(server, { current: `${server.url}/d/file1?v=1` }).fetchRun(1, 5, async (index, chunk) => {
      got.push(index);
      return verifyChunk(server!.manifest, index, chunk);
    }, new AbortController().signal);
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(server.ranges).toEqual([`bytes=${CHUNK}-${bytes.length - 1}`]);
  });

  it('rejects a 206 whose Content-Range is not exactly the range asked for', async () => {
    server = await startFakeServer({ bytes: testBytes(CHUNK * 2), chunkSize: CHUNK, lieAboutRange: true });
    const delivered: number[] = [];
    const run = filler(server, { current: `${server.url}/d/file1?v=1` }).fetchRun(0, 2, async (index) => {
      delivered.push(index);
      return true;
    }, new AbortController().signal);
    await expect(run).rejects.toMatchObject({ code: 'PF_ERR_HTTP_RANGE_MISMATCH' });
    expect(delivered).toEqual([]);
    expect(server.ranges).toHaveLength(3);
  });

  it('refreshes an expired URL (403) through the session and carries on from the next chunk', async () => {
    const bytes = testBytes(CHUNK * 4);
    server = await startFakeServer({ bytes, chunkSize: CHUNK, expireFirstUrlAfterRequests: 1 });
    const urls = { current: `${server.url}/d/file1?v=1` };
    const f = filler(server, urls);
    const got: number[] = [];
    const sink = async (index: number, chunk: Uint8Array) => {
      got.push(index);
      return verifyChunk(server!.manifest, index, chunk);
    };
    await f.fetchRun(0, 2, sink, new AbortController().signal);
    await f.fetchRun(2, 2, sink, new AbortController().signal);
    expect(got).toEqual([0, 1, 2, 3]);
    expect(server.statusCounts.get(403)).toBe(1);
    expect(urls.current).toContain('v=2');
  });

  it('retries a chunk that fails verification, and gives up after the attempts', async () => {
    server = await startFakeServer({ bytes: testBytes(CHUNK), chunkSize: CHUNK, flipBits: true });
    const s = server;
    const run = filler(s, { current: `${s.url}/d/file1?v=1` }).fetchRun(0, 1, (index, chunk) => verifyChunk(s.manifest, index, chunk), new AbortController().signal);
    await expect(run).rejects.toBeInstanceOf(PfError);
    expect(s.ranges).toHaveLength(3);
  });

  it('a 404 from the data plane says the file was removed, at once, without retrying', async () => {
    server = await startFakeServer({ bytes: testBytes(CHUNK * 2), chunkSize: CHUNK });
    const run = filler(server, { current: `${server.url}/d/removed-file?v=1` }).fetchRun(0, 2, async () => true, new AbortController().signal);
    const error: unknown = await run.catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'PF_ERR_FILE_NOT_FOUND' });
    expect(String(error)).toMatch(/this file was removed from the server/);
    expect(server.statusCounts.get(404)).toBe(1);
  });

  it('streams: a chunk reaches the sink before the whole run has arrived', async () => {
    const bytes = testBytes(CHUNK * 3);
    server = await startFakeServer({ bytes, chunkSize: CHUNK, bytesPerSecond: 8 * 1024 * 1024 });
    const s = server;
    const sentAtDelivery: number[] = [];
    await filler(s, { current: `${s.url}/d/file1?v=1` }).fetchRun(0, 3, async (index) => {
      sentAtDelivery.push(s.dataBytesSent);
      expect(chunkRange(s.manifest, index).end).toBeLessThanOrEqual(s.dataBytesSent);
      return true;
    }, new AbortController().signal);
    expect(sentAtDelivery[0]).toBeLessThan(bytes.length);
  });
});
