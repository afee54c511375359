import type { FileHandle } from 'node:fs/promises';
import { chunkRange, type Bitfield, type Manifest } from '../../protocol/index.ts';

/** Read `length` bytes at `position`; shorter only if the file ends first. */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(out, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? out : out.subarray(0, filled);
}

/**
 * Bytes [offset, offset+length) of a verified chunk, for a peer's request: undefined when the
 * chunk is not verified or the range leaves the chunk.
 */
export async function readVerifiedChunk(
  handle: FileHandle | undefined,
  manifest: Manifest | undefined,
  verified: Bitfield,
  index: number,
  offset: number,
  length: number,
): Promise<Uint8Array | undefined> {
  if (!manifest || !handle || !verified.get(index)) return undefined;
  const { start, end } = chunkRange(manifest, index);
  if (offset < 0 || length < 0 || start + offset + length > end) return undefined;
  return readAt(handle, start + offset, length);
}
