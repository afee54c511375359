import { chunkCount, chunkLength, type Manifest } from '../protocol/index.ts';

/**
 * The chunks of `previous` (a file's version being downloaded) that `next` (the version the
 * publisher put in its place) does not have as they are: another SHA-256, another range (the
 * size changed and the chunk is cut or lengthened), or no chunk at that offset at all. Every
 * chunk of `previous` when the chunk size differs. The rest is the same bytes at the same
 * offset, and is kept when a download switches to `next`.
 */
export function changedChunks(previous: Manifest, next: Manifest): number[] {
  const count = chunkCount(previous.size, previous.chunk_size);
  const nextCount = chunkCount(next.size, next.chunk_size);
  const changed: number[] = [];
  for (let index = 0; index < count; index++) {
    const isSame =
      previous.chunk_size === next.chunk_size &&
      index < nextCount &&
      chunkLength(previous, index) === chunkLength(next, index) &&
      previous.chunks[index] === next.chunks[index];
    if (!isSame) changed.push(index);
  }
  return changed;
}
