import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChunkStore } from '../../client/chunk-store.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { FileChunkStore } from '../../client/node/file-chunk-store.ts';
import { verifyChunk } from '../../client/verify.ts';
import { chunkRange } from '../../protocol/index.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const implementations: Array<[string, () => Promise<ChunkStore>]> = [
  ['memory', () => Promise.resolve(new MemoryChunkStore())],
  [
    'file',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'pf-store-'));
      dirs.push(dir);
      return new FileChunkStore(join(dir, 'out.bin'), { flushIntervalMs: 1 });
    },
  ],
  [
    // No time for synchronous writes: every write goes through libuv's pool.
    'file, writes on the pool',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'pf-store-'));
      dirs.push(dir);
      return new FileChunkStore(join(dir, 'out.bin'), { flushIntervalMs: 1, syncWriteBudget: 0 });
    },
  ],
];

/** One contract, every ChunkStore. */
describe.each(implementations)('ChunkStore contract: %s', (_name, make) => {
  it('starts empty, stores, reads back ranges, and refuses absent chunks', async () => {
    const bytes = testBytes(256 * 1024 * 3 + 17);
    const manifest = await makeManifest(bytes, 'f', 256 * 1024);
    const store = await make();
    const have = await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
    expect(have.count()).toBe(0);
    const { start, end } = chunkRange(manifest, 3);
    await store.put(3, bytes.subarray(start, end));
    expect(await store.read(3, 5, 10)).toEqual(bytes.subarray(start + 5, start + 15));
    expect(await store.read(0, 0, 10)).toBeUndefined();
    expect(await store.read(3, 0, end - start + 1)).toBeUndefined();
    await store.flush();
    await store.close();
  });

  it('keeps resume data', async () => {
    const store = await make();
    const data = { session_id: 's'.repeat(16), session_token: 't'.repeat(32), server_url: 'http://x', file_id: 'f', manifest_url: 'http://x/m', tracker_url: 'ws://x/announce', info_hash: 'a'.repeat(40) };
    const bytes = testBytes(1000);
    const manifest = await makeManifest(bytes, 'f');
    await store.saveResumeData(data);
    await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
    expect(await store.loadResumeData()).toEqual(data);
    await store.close();
  });
});
