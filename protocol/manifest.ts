import { Type, type Static } from '@sinclair/typebox';
import { createCodec } from './codec.ts';
import { bytesToHex } from './hex.ts';
import { FILE_ID_PATTERN, HEX_ID_PATTERN, SHA256_HEX_PATTERN } from './patterns.ts';
import { sha256 } from './sha256.ts';

export const MANIFEST_VERSION = 1;
export const MIN_CHUNK_SIZE_BYTES = 256 * 1024;
export const MAX_CHUNK_SIZE_BYTES = 16 * 1024 * 1024;
/** Chunk size grows (by powers of two) until a file has at most this many chunks, up to the max size. */
export const TARGET_MAX_CHUNKS = 2048;
/** Peers exchange chunks (BitTorrent pieces) in blocks of this size. */
export const BLOCK_SIZE_BYTES = 16 * 1024;
/** 50 GB is the design ceiling; manifests larger than this are rejected. */
export const MAX_FILE_SIZE_BYTES = 64 * 1024 ** 3;

export const FileIdSchema = Type.String({ pattern: FILE_ID_PATTERN });
export const Sha256HexSchema = Type.String({ pattern: SHA256_HEX_PATTERN });
export const InfoHashSchema = Type.String({ pattern: HEX_ID_PATTERN });

export const ManifestSchema = Type.Object(
  {
    v: Type.Literal(MANIFEST_VERSION),
    file_id: FileIdSchema,
    name: Type.String({ minLength: 1, maxLength: 255 }),
    size: Type.Integer({ minimum: 0, maximum: MAX_FILE_SIZE_BYTES }),
    content_type: Type.String({ minLength: 1, maxLength: 255 }),
    chunk_size: Type.Integer({ minimum: MIN_CHUNK_SIZE_BYTES, maximum: MAX_CHUNK_SIZE_BYTES }),
    chunks: Type.Array(Sha256HexSchema, { maxItems: 1 << 16 }),
    sha256: Sha256HexSchema,
    info_hash: InfoHashSchema,
  },
  { additionalProperties: false },
);
export type Manifest = Static<typeof ManifestSchema>;
export const manifestCodec = createCodec(ManifestSchema);

/** A catalog entry: what `GET /files` and `GET /files/:id` return. */
export const FileEntrySchema = Type.Object({
  file_id: FileIdSchema,
  name: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  content_type: Type.String(),
  sha256: Sha256HexSchema,
  info_hash: InfoHashSchema,
  chunk_size: Type.Integer(),
  chunk_count: Type.Integer({ minimum: 0 }),
  last_modified: Type.String({ description: 'RFC 3339' }),
  manifest_url: Type.String(),
  /**
   * Absent from older origins, which had no private files: absent = public. Private entries
   * are listed only to a publisher key (`x-peerfill-key`), as a standalone tracker reads them.
   */
  visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
});
export type FileEntry = Static<typeof FileEntrySchema>;
export const FileListSchema = Type.Object({ files: Type.Array(FileEntrySchema) });
export type FileList = Static<typeof FileListSchema>;
export const fileEntryCodec = createCodec(FileEntrySchema);
export const fileListCodec = createCodec(FileListSchema);

/** Smallest power of two in [256 KiB, 16 MiB] giving at most TARGET_MAX_CHUNKS chunks. */
export function chooseChunkSize(sizeBytes: number): number {
  let chunkSize = MIN_CHUNK_SIZE_BYTES;
  while (chunkSize < MAX_CHUNK_SIZE_BYTES && Math.ceil(sizeBytes / chunkSize) > TARGET_MAX_CHUNKS) chunkSize *= 2;
  return chunkSize;
}

export function chunkCount(sizeBytes: number, chunkSizeBytes: number): number {
  return sizeBytes === 0 ? 0 : Math.ceil(sizeBytes / chunkSizeBytes);
}

/** Byte range [start, end) of chunk `index`. */
export function chunkRange(manifest: Pick<Manifest, 'size' | 'chunk_size'>, index: number): { start: number; end: number } {
  const start = index * manifest.chunk_size;
  return { start, end: Math.min(start + manifest.chunk_size, manifest.size) };
}

/** Byte length of chunk `index`. */
export function chunkLength(manifest: Pick<Manifest, 'size' | 'chunk_size'>, index: number): number {
  const { start, end } = chunkRange(manifest, index);
  return end - start;
}

/**
 * The canonical bytes the info_hash covers: every field but info_hash, in schema
 * order, as compact JSON. Any change to content or metadata changes the swarm id.
 */
export function canonicalManifestBytes(manifest: Omit<Manifest, 'info_hash'>): Uint8Array {
  const canonical = {
    v: manifest.v,
    file_id: manifest.file_id,
    name: manifest.name,
    size: manifest.size,
    content_type: manifest.content_type,
    chunk_size: manifest.chunk_size,
    chunks: manifest.chunks,
    sha256: manifest.sha256,
  };
  return new TextEncoder().encode(JSON.stringify(canonical));
}

/** info_hash = first 20 bytes of SHA-256 over the canonical manifest bytes, as hex. */
export async function computeInfoHash(manifest: Omit<Manifest, 'info_hash'>): Promise<string> {
  const digest = await sha256(canonicalManifestBytes(manifest));
  return bytesToHex(digest.subarray(0, 20));
}

export type ManifestCheck = { ok: true; manifest: Manifest } | { ok: false; errors: string[] };

/** Schema check plus the invariants a schema cannot express; an info_hash that lies fails. */
export async function verifyManifest(value: unknown): Promise<ManifestCheck> {
  const decoded = manifestCodec.decode(value);
  if (!decoded.ok) return decoded;
  const manifest = decoded.value;
  const errors: string[] = [];
  if ((manifest.chunk_size & (manifest.chunk_size - 1)) !== 0) errors.push('/chunk_size: not a power of two');
  if (manifest.chunks.length !== chunkCount(manifest.size, manifest.chunk_size)) {
    errors.push('/chunks: count does not match size / chunk_size');
  }
  if (errors.length === 0 && (await computeInfoHash(manifest)) !== manifest.info_hash) {
    errors.push('/info_hash: does not match the manifest contents');
  }
  return errors.length === 0 ? { ok: true, manifest } : { ok: false, errors };
}
