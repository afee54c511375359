import { chunkRange, sha256Hex, type Manifest } from '../protocol/index.ts';

/**
 * SHA-256 of one chunk against the manifest (WebCrypto, so it runs everywhere).
 * Nothing is stored as done or offered to a peer before this returns true.
 */
export async function verifyChunk(manifest: Manifest, index: number, bytes: Uint8Array, hashChunk: ChunkHasher = sha256Hex): Promise<boolean> {
  const expected = manifest.chunks[index];
  if (expected === undefined) return false;
  const { start, end } = chunkRange(manifest, index);
  if (bytes.length !== end - start) return false;
  return (await hashChunk(bytes)) === expected;
}

/** SHA-256 of one buffer, lower-case hex. */
export type ChunkHasher = (bytes: Uint8Array) => Promise<string> | string;

/** Byte length of chunk `index`. */
export function chunkLength(manifest: Pick<Manifest, 'size' | 'chunk_size'>, index: number): number {
  const { start, end } = chunkRange(manifest, index);
  return end - start;
}

/**
 * An incremental SHA-256 over the whole file, fed in file order. WebCrypto has no
 * incremental digest, so the runtime provides one: node:crypto in Node, the portable
 * implementation in `sha256-stream.ts` elsewhere.
 */
export interface FileHasher {
  update(bytes: Uint8Array): void;
  /** Lower-case hex. */
  digestHex(): string;
}

export type FileHasherFactory = () => FileHasher;
