import type { Bitfield, Manifest } from '../protocol/index.ts';

/**
 * Where verified chunks live. The engine only ever puts chunks that passed SHA-256;
 * a store must not report a chunk as present unless it was put (or re-verified) for
 * this very manifest. Implementations: memory (tests, small files), file (Node), OPFS (browser).
 */
export interface ChunkStore {
  /**
   * Bind the store to a manifest and return the chunks already present and verified.
   * `verify` re-checks a chunk's bytes; a store whose local state it cannot trust must
   * use it rather than report unchecked chunks.
   */
  open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield>;
  /**
   * Store a verified chunk. Resolves once written (durability is batched; see flush). The
   * caller reuses `bytes` afterwards: a store that keeps them must keep a copy.
   */
  put(index: number, bytes: Uint8Array): Promise<void>;
  /** Bytes [offset, offset+length) of a stored chunk, or undefined if absent. */
  read(index: number, offset: number, length: number): Promise<Uint8Array | undefined>;
  /** Make every put so far durable, with the state that records it. */
  flush(): Promise<void>;
  /** Opaque resume data kept with the store (the Node store keeps it in its state file). */
  loadResumeData(): Promise<ResumeData | undefined>;
  saveResumeData(data: ResumeData | undefined): Promise<void>;
  /**
   * Optional: forget chunks that no longer verify (found when the whole-file SHA-256 failed),
   * durably, so they are fetched again. A store without it fails such a download instead.
   */
  discard?(indexes: readonly number[]): Promise<void>;
  /** Every chunk is in and the whole-file SHA-256 matched: publish the file. */
  finalize(): Promise<void>;
  close(): Promise<void>;
}

/** What a later run needs to resume the same download session. */
export interface ResumeData {
  session_id: string;
  session_token: string;
  server_url: string;
  file_id: string;
  manifest_url: string;
  tracker_url: string;
  info_hash: string;
}
