import { mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SeedFileStore, type SeedFileChange } from '../../client/node/seed-file-store.ts';
import { verifyChunk } from '../../client/verify.ts';
import { chunkRange, type Manifest } from '../../protocol/index.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

/** The seed store's re-verification of reads for uploads, on an injected clock. */
const CHUNK = 256 * 1024;
let dir: string;
let path: string;
let bytes: Uint8Array;
let manifest: Manifest;
let store: SeedFileStore | undefined;
const mtime = new Date(1_700_000_000_000);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-seedstore-'));
  bytes = testBytes(CHUNK * 4 + 100, 29);
  manifest = await makeManifest(bytes, 'f', CHUNK);
  path = join(dir, 'f.bin');
  await writeFile(path, bytes);
  await utimes(path, mtime, mtime);
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

const chunk = (index: number) => {
  const { start, end } = chunkRange(manifest, index);
  return bytes.subarray(start, end);
};

/** Other bytes over these chunks, in place; the size and mtime put back as they were. */
async function changeQuietly(indexes: number[]): Promise<void> {
  const handle = await open(path, 'r+');
  for (const index of indexes) await handle.write(testBytes(CHUNK, 500 + index), 0, CHUNK, index * CHUNK);
  await handle.close();
  await utimes(path, mtime, mtime);
}

describe('SeedFileStore', () => {
  it('a chunk that changed on disk with size and mtime kept fails its next read from disk: it is said once, the whole file is checked again, and only what verifies is served', async () => {
    let nowMs = 1_000_000;
    const failed: number[] = [];
    const changes: SeedFileChange[] = [];
    let onChanged: () => void = () => undefined;
    const changed = new Promise<void>((resolve) => (onChanged = resolve));
    store = new SeedFileStore(path, {
      now: () => nowMs,
      onChunkFailed: (index) => failed.push(index),
      onChanged: (change) => {
        changes.push(change);
        onChanged();
      },
    });
    const have = await store.open(manifest, (index, chunkBytes) => verifyChunk(manifest, index, chunkBytes));
    expect(have.count()).toBe(5);
    expect(await store.read(1, 0, 1000)).toEqual(chunk(1).subarray(0, 1000));

    await changeQuietly([1, 3]);
    // The chunk in use is served from memory: bytes that verified when they were read.
    expect(await store.read(1, 1000, 1000)).toEqual(chunk(1).subarray(1000, 2000));
    expect(failed).toEqual([]);

    // Unused for a second: read from disk again, and it fails.
    nowMs += 1001;
    expect(await store.read(1, 2000, 1000)).toBeUndefined();
    expect(failed).toEqual([1]);
    await changed;
    expect(changes).toEqual([{ reason: 'chunk 1 failed SHA-256 when read for an upload', verifiedChunks: 3, chunkCount: 5, lost: [3], found: [] }]);

    // Neither is served any more, and neither is said again; the others still are.
    expect(await store.read(1, 0, 1000)).toBeUndefined();
    expect(await store.read(3, 0, 1000)).toBeUndefined();
    expect(await store.read(0, 5, 10)).toEqual(chunk(0).subarray(5, 15));
    expect(await store.read(4, 0, 100)).toEqual(chunk(4));
    expect(failed).toEqual([1]);
    expect(changes).toHaveLength(1);

    // The file put back (a new mtime): every chunk is checked again, and the two are found.
    let onFound: () => void = () => undefined;
    const found = new Promise<void>((resolve) => (onFound = resolve));
    onChanged = onFound;
    await writeFile(path, bytes);
    nowMs += 1001;
    expect(await store.read(1, 0, 1000)).toBeUndefined();
    await found;
    expect(changes[1]).toEqual({ reason: 'its mtime changed', verifiedChunks: 5, chunkCount: 5, lost: [], found: [1, 3] });
    expect(await store.read(1, 0, 1000)).toEqual(chunk(1).subarray(0, 1000));
    expect(await store.read(3, 0, 1000)).toEqual(chunk(3).subarray(0, 1000));
  });

  it('a read for an upload never leaves its chunk, and parallel reads of one chunk read and check it once', async () => {
    let checks = 0;
    store = new SeedFileStore(path, { now: () => 0 });
    await store.open(manifest, (index, chunkBytes) => {
      checks++;
      return verifyChunk(manifest, index, chunkBytes);
    });
    const afterOpen = checks;
    expect(await store.read(4, 50, 51)).toBeUndefined();
    expect(await store.read(0, -1, 10)).toBeUndefined();
    const parts = await Promise.all([0, 1, 2, 3].map((i) => store!.read(2, i * 65536, 65536)));
    expect(Buffer.concat(parts.map((part) => part!))).toEqual(Buffer.from(chunk(2)));
    expect(checks - afterOpen).toBe(1);
  });
});
