import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;
let server: FakeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function waitFor<T>(subscribe: (resolve: (value: T) => void, reject: (error: unknown) => void) => void): Promise<T> {
  return new Promise(subscribe);
}

describe('download engine over HTTP only', () => {
  it('downloads with several parallel ranges, verifies every chunk and the whole file', async () => {
    const bytes = testBytes(CHUNK * 37 + 123, 3);
    server = await startFakeServer({ bytes, chunkSize: CHUNK });
    const store = new MemoryChunkStore();
    const download = createClient({ usePeers: false, httpMaxRunBytes: CHUNK * 4 }).download(`${server.url}/files/file1`, store);
    const chunks: number[] = [];
    const events: string[] = [];
    download.on('chunk', ({ index, source }) => {
      expect(source).toBe('http');
      chunks.push(index);
      if (events.at(-1) !== 'chunk') events.push('chunk');
    });
    download.on('verifying', ({ sizeBytes }) => events.push(`verifying ${sizeBytes}`));
    download.on('done', () => events.push('done'));
    const done = waitFor<{ sha256: string }>((resolve, reject) => {
      download.on('done', resolve);
      download.on('error', reject);
    });
    void download.start();
    const { sha256 } = await done;
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(store.isFinalized).toBe(true);
    expect(Buffer.compare(store.assemble(), bytes)).toBe(0);
    expect(new Set(chunks).size).toBe(38);
    // The whole-file check is announced after the last chunk and before done.
    expect(events).toEqual(['chunk', `verifying ${bytes.length}`, 'done']);
    // Coalesced: far fewer requests than chunks, and at least two lanes ran.
    expect(server.ranges.length).toBeLessThan(38);
    expect(server.ranges.length).toBeGreaterThanOrEqual(4);
    expect(server.dataBytesSent).toBe(bytes.length);
    // Progress reached the session.
    expect(server.patches.some((p) => typeof p === 'object' && p !== null && 'bytes_confirmed' in p && p.bytes_confirmed === bytes.length)).toBe(true);
  });

  it('handles an empty file and a one-chunk file', async () => {
    for (const size of [0, 1000]) {
      const bytes = testBytes(size, 9);
      server = await startFakeServer({ bytes });
      const download = createClient({ usePeers: false }).download(`${server.url}/file1`, new MemoryChunkStore());
      const done = waitFor<{ sha256: string }>((resolve, reject) => {
        download.on('done', resolve);
        download.on('error', reject);
      });
      void download.start();
      expect((await done).sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      await server.close();
      server = undefined;
    }
  });

  it('fails with PF_ERR_HTTP_RANGE_MISMATCH when the only source lies about ranges', async () => {
    server = await startFakeServer({ bytes: testBytes(CHUNK * 2), chunkSize: CHUNK, lieAboutRange: true });
    const download = createClient({ usePeers: false, httpMaxAttempts: 2, httpConcurrency: 1 }).download(`${server.url}/file1`, new MemoryChunkStore());
    const failed = waitFor<{ code: string }>((resolve) => download.on('error', resolve));
    void download.start();
    expect((await failed).code).toBe('PF_ERR_HTTP_RANGE_MISMATCH');
  });

  it('pause() PATCHes the session paused and resume() continues to a verified file', async () => {
    const bytes = testBytes(CHUNK * 16, 5);
    server = await startFakeServer({ bytes, chunkSize: CHUNK, bytesPerSecond: 2 * 1024 * 1024 });
    const store = new MemoryChunkStore();
    const download = createClient({ usePeers: false, httpConcurrency: 1, httpMaxRunBytes: CHUNK }).download(`${server.url}/file1`, store);
    const firstChunk = waitFor<void>((resolve) => download.once('chunk', () => resolve()));
    const done = waitFor<{ sha256: string }>((resolve, reject) => {
      download.on('done', resolve);
      download.on('error', reject);
    });
    // What a page shows when it says "paused" is the last progress event before it; that
    // count must be the one that stands (the e2e pause test read a stale one).
    let shownBytes = -1;
    let shownWhenPaused = -1;
    download.on('progress', ({ verifiedBytes }) => (shownBytes = verifiedBytes));
    download.on('status', ({ status }) => {
      if (status === 'paused') shownWhenPaused = shownBytes;
    });
    void download.start();
    await firstChunk;
    await download.pause();
    expect(download.status).toBe('paused');
    expect(shownWhenPaused).toBe(download.progress().verifiedBytes);
    expect(shownWhenPaused).toBeGreaterThanOrEqual(CHUNK);
    expect(server.patches.some((p) => typeof p === 'object' && p !== null && 'status' in p && p.status === 'paused')).toBe(true);
    await download.resume();
    expect((await done).sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(server.patches.some((p) => typeof p === 'object' && p !== null && 'status' in p && p.status === 'resumed')).toBe(true);
  });
});
