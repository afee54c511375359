import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type ClientOptions } from '../../client/index.ts';
import type { Download } from '../../client/download.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { nodeClientOptions } from '../../client/node/node-runtime.ts';
import { connectDirectly, whenReady, whenSeeding } from './fixtures/direct-peers.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;

/**
 * A seeder whose stored bytes are right but who, once seeding (after its own whole-file
 * check passed), flips a bit in everything it sends.
 */
class LyingStore extends MemoryChunkStore {
  isLying = false;

  override async read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const bytes = await super.read(index, offset, length);
    if (!bytes || !this.isLying) return bytes;
    const copy = bytes.slice();
    copy[0] = (copy[0] ?? 0) ^ 0x80;
    return copy;
  }
}

let server: FakeServer | undefined;
const downloads: Download[] = [];
afterEach(async () => {
  for (const download of downloads.splice(0)) await download.destroy();
  await server?.close();
  server = undefined;
});

// Peers connect directly in-process: no tracker (no WebSocket implementation).
const peerOptions = (): ClientOptions => ({ ...nodeClientOptions(), createWebSocket: undefined, chokeIntervalMs: 1000 });

describe('peers over real WebRTC data channels (@roamhq/wrtc)', () => {
  it('bans a peer that sends bit-flipped chunks, and still assembles the right file', async () => {
    const bytes = testBytes(CHUNK * 24, 11);
    // HTTP is slow, so the leecher leans on peers.
    server = await startFakeServer({ bytes, chunkSize: CHUNK, bytesPerSecond: 256 * 1024 });
    const url = `${server.url}/file1`;
    const seed = (store: MemoryChunkStore) => {
      const download = createClient({ ...peerOptions(), seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY }).download(url, store);
      downloads.push(download);
      void download.start();
      return download;
    };
    const honest = seed(new MemoryChunkStore(bytes));
    const liarClient = createClient({ ...peerOptions(), seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY });
    const liarStore = new LyingStore(bytes);
    const liar = liarClient.download(url, liarStore);
    downloads.push(liar);
    void liar.start();
    const leecherStore = new MemoryChunkStore();
    const leecher = createClient({ ...peerOptions(), httpConcurrencyWithPeers: 1 }).download(url, leecherStore);
    downloads.push(leecher);
    const bans: string[] = [];
    const chunkSources = new Map<number, string>();
    leecher.on('ban', ({ peerIdHex }) => bans.push(peerIdHex));
    leecher.on('chunk', ({ index, source, peerIdHex }) => chunkSources.set(index, source === 'peer' ? peerIdHex! : 'http'));
    const done = new Promise<{ sha256: string }>((resolve, reject) => {
      leecher.on('done', resolve);
      leecher.on('error', reject);
    });
    void leecher.start();
    await Promise.all([whenSeeding(honest), whenSeeding(liar), whenReady(leecher)]);
    liarStore.isLying = true;
    // The liar alone first, until it is banned: with the honest peer there from the start, under
    // load it could serve every chunk before the liar's bad ones arrived (a full run saw no ban).
    const banned = new Promise<void>((resolve) => leecher.once('ban', () => resolve()));
    await connectDirectly(liar, leecher);
    await banned;
    await connectDirectly(honest, leecher);

    const { sha256 } = await done;
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(Buffer.compare(leecherStore.assemble(), bytes)).toBe(0);
    expect(bans).toEqual([liarClient.peerIdHex]);
    expect([...chunkSources.values()]).not.toContain(liarClient.peerIdHex);
    expect([...chunkSources.values()].filter((source) => source !== 'http').length).toBeGreaterThan(0);
  });
});
