import { chunkRange, sha256Hex, type Manifest } from '../protocol/index.ts';
import type { ChunkStore } from './chunk-store.ts';

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

/**
 * An incremental SHA-256 over the whole file, fed in file order. WebCrypto has no
 * incremental digest, so the runtime provides one: node:crypto in Node, the portable
 * implementation in `sha256-stream.ts` elsewhere.
 */
export interface FileHasher {
  /** Done with `bytes` once it returns or its promise settles (the caller may then reuse them). */
  update(bytes: Uint8Array): void | Promise<void>;
  /**
   * Optional: hash bytes [start, end) of the file as the store holds it, reading them itself
   * (Node's hasher reads the .part file on its own thread), instead of update() with bytes
   * read back by the caller.
   */
  updateFromStore?(start: number, end: number): Promise<void>;
  /** Lower-case hex. */
  digestHex(): string | Promise<string>;
}

/** A file hasher for a download into `store`. */
export type FileHasherFactory = (store: ChunkStore) => FileHasher;
