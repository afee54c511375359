import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FileHashTracker } from '../../client/file-hash-tracker.ts';
import { createThreadFileHasher } from '../../client/node/hash-thread.ts';
import { Bitfield, chunkRange } from '../../protocol/index.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

const CHUNK = 64 * 1024;

async function setup() {
  const bytes = testBytes(CHUNK * 6 + 123, 11);
  const manifest = await makeManifest(bytes, 'f', CHUNK);
  const have = new Bitfield(7);
  const readBack: number[] = [];
  const chunk = (index: number) => {
    const { start, end } = chunkRange(manifest, index);
    return bytes.slice(start, end);
  };
  const tracker = new FileHashTracker(manifest, have, createThreadFileHasher(), (index, offset, length) => {
    readBack.push(index);
    return Promise.resolve(chunk(index).subarray(offset, offset + length));
  });
  return { bytes, manifest, have, readBack, chunk, tracker };
}

describe('FileHashTracker', () => {
  it('hashes chunks offered in file order from the bytes in hand, reading nothing back', async () => {
    const { bytes, have, readBack, chunk, tracker } = await setup();
    for (let index = 0; index < 7; index++) {
      have.set(index);
      // The caller reuses its buffer as soon as offer() returns.
      const lent = chunk(index);
      const { consumed, caughtUp } = tracker.offer(index, lent);
      await consumed;
      lent.fill(0xee);
      await caughtUp;
    }
    expect(readBack).toEqual([]);
    expect(await tracker.check()).toEqual({ isMatch: true, sha256: createHash('sha256').update(bytes).digest('hex') });
  });

  it('reads back chunks verified out of order, once the prefix before them is complete', async () => {
    const { have, readBack, chunk, tracker } = await setup();
    for (const index of [2, 3, 0, 1, 6, 4, 5]) {
      have.set(index);
      await tracker.offer(index, chunk(index)).caughtUp;
    }
    // 0, 1, 4 and 5 were next when offered; 2, 3 (after 1) and 6 (after 5) came from the store.
    expect(readBack).toEqual([2, 3, 6]);
    expect((await tracker.check()).isMatch).toBe(true);
  });

  it('a check before every chunk is verified fails loudly', async () => {
    const { have, chunk, tracker } = await setup();
    have.set(0);
    await tracker.offer(0, chunk(0)).caughtUp;
    await expect(tracker.check()).rejects.toThrow(/before every chunk/);
  });
});
