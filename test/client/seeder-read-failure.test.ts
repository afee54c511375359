import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Download } from '../../client/download.ts';
import { createClient, type ClientOptions } from '../../client/index.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { nodeClientOptions } from '../../client/node/node-runtime.ts';
import { connectDirectly, whenReady, whenSeeding } from './fixtures/direct-peers.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;

/** A seeder whose disk fails (or whose store was closed under a read, as on shutdown). */
class FailingStore extends MemoryChunkStore {
  isFailing = false;
  reads = 0;

  override read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    if (!this.isFailing) return super.read(index, offset, length);
    this.reads++;
    return Promise.reject(Object.assign(new Error('file closed'), { code: 'EBADF' }));
  }
}

let server: FakeServer | undefined;
const downloads: Download[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  for (const download of downloads.splice(0)) await download.destroy();
  await server?.close();
  server = undefined;
});

const peerOptions = (): ClientOptions => ({ ...nodeClientOptions(), createWebSocket: undefined });

describe('a seeder whose store fails a read', () => {
  it('skips the block (no unhandled rejection, which would end a CLI process); the leecher still finishes', async () => {
    process.on('unhandledRejection', onUnhandled);
    const bytes = testBytes(CHUNK * 16, 17);
    server = await startFakeServer({ bytes, chunkSize: CHUNK, bytesPerSecond: 1024 * 1024 });
    const url = `${server.url}/file1`;
    const store = new FailingStore(bytes);
    const seeder = createClient({ ...peerOptions(), seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY }).download(url, store);
    downloads.push(seeder);
    void seeder.start();
    const leecher = createClient({ ...peerOptions(), httpMaxRunBytes: CHUNK }).download(url, new MemoryChunkStore());
    downloads.push(leecher);
    const done = new Promise<{ sha256: string }>((resolve, reject) => {
      leecher.on('done', resolve);
      leecher.on('error', reject);
    });
    void leecher.start();
    await Promise.all([whenSeeding(seeder), whenReady(leecher)]);
    store.isFailing = true;
    await connectDirectly(seeder, leecher);

    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out after 40 s waiting for the leecher')), 40_000);
    });
    const { sha256 } = await Promise.race([done, stalled]).finally(() => clearTimeout(timer));
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(store.reads).toBeGreaterThan(0);
    expect(unhandled).toEqual([]);
  }, 60_000);
});
