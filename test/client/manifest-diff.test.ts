import { describe, expect, it } from 'vitest';
import { changedChunks } from '../../client/manifest-diff.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

const KiB = 1024;
const CHUNK = 256 * KiB;

/** `bytes` with chunk `index` (of CHUNK bytes) replaced. */
function withChunk(bytes: Uint8Array, index: number, seed: number): Uint8Array {
  const next = Uint8Array.from(bytes);
  next.set(testBytes(Math.min(CHUNK, bytes.length - index * CHUNK), seed), index * CHUNK);
  return next;
}

describe('changedChunks: what a new version of a file does not have as it was', () => {
  const bytes = testBytes(8 * CHUNK + 100 * KiB, 1); // 9 chunks, the last one short

  it('nothing when the versions are the same; the chunks whose SHA-256 differs otherwise', async () => {
    const previous = await makeManifest(bytes, 'f', CHUNK);
    expect(changedChunks(previous, await makeManifest(bytes, 'f', CHUNK))).toEqual([]);
    expect(changedChunks(previous, await makeManifest(withChunk(withChunk(bytes, 2, 7), 8, 8), 'f', CHUNK))).toEqual([2, 8]);
  });

  it('a shorter file: the chunks past its end and the one it cuts', async () => {
    const previous = await makeManifest(bytes, 'f', CHUNK);
    // 5.5 chunks: 0-4 the same, 5 cut short, 6-8 gone.
    expect(changedChunks(previous, await makeManifest(bytes.subarray(0, 5.5 * CHUNK), 'f', CHUNK))).toEqual([5, 6, 7, 8]);
  });

  it('a longer file: the old short last chunk is lengthened (another range); the rest is kept', async () => {
    const previous = await makeManifest(bytes, 'f', CHUNK);
    const longer = new Uint8Array(bytes.length + CHUNK);
    longer.set(bytes);
    expect(changedChunks(previous, await makeManifest(longer, 'f', CHUNK))).toEqual([8]);
  });

  it('another chunk size: every chunk', async () => {
    const previous = await makeManifest(bytes, 'f', CHUNK);
    expect(changedChunks(previous, await makeManifest(bytes, 'f', 2 * CHUNK))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
