import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Download } from '../../client/download.ts';
import { createClient, type ClientOptions } from '../../client/index.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { nodeClientOptions } from '../../client/node/node-runtime.ts';
import { connectDirectly, whenReady, whenSeeding } from './fixtures/direct-peers.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;

/** A seeder that stops answering once `isSilent` (a crashed or wedged peer whose connection stays up). */
class SilentStore extends MemoryChunkStore {
  isSilent = false;

  override read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    if (this.isSilent) return new Promise<never>(() => undefined);
    return super.read(index, offset, length);
  }
}

let server: FakeServer | undefined;
const downloads: Download[] = [];
afterEach(async () => {
  for (const download of downloads.splice(0)) await download.destroy();
  await server?.close();
  server = undefined;
});

const peerOptions = (): ClientOptions => ({ ...nodeClientOptions(), createWebSocket: undefined });

describe('a peer that goes silent with requests outstanding', () => {
  it('is snubbed, so HTTP takes its chunks instead of waiting for the connection to time out', async () => {
    const bytes = testBytes(CHUNK * 24, 13);
    server = await startFakeServer({ bytes, chunkSize: CHUNK, bytesPerSecond: 1024 * 1024 });
    const url = `${server.url}/file1`;
    const store = new SilentStore(bytes);
    const seeder = createClient({ ...peerOptions(), seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY }).download(url, store);
    downloads.push(seeder);
    void seeder.start();
    const warnings: Array<{ message: string; reason: unknown }> = [];
    // One-chunk HTTP runs: the peer gets work as soon as it connects.
    const leecher = createClient({ ...peerOptions(), httpMaxRunBytes: CHUNK, onWarning: (message, details) => warnings.push({ message, reason: details?.reason }) }).download(url, new MemoryChunkStore());
    downloads.push(leecher);
    const done = new Promise<{ sha256: string }>((resolve, reject) => {
      leecher.on('done', resolve);
      leecher.on('error', reject);
    });
    void leecher.start();
    await Promise.all([whenSeeding(seeder), whenReady(leecher)]);
    store.isSilent = true;
    await connectDirectly(seeder, leecher);

    // Without silence detection the chunks asked of the seeder wait for their 20 s deadline,
    // round after round, while HTTP leaves every chunk the seeder "has" to it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out after 40 s: the download stalled on the silent peer')), 40_000);
    });
    const { sha256 } = await Promise.race([done, stalled]).finally(() => clearTimeout(timer));
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(warnings.some(({ message, reason }) => message === 'peer snubbed' && String(reason).startsWith('silent'))).toBe(true);
  }, 60_000);
});
