import type { FileDirectory } from '../../protocol/index.ts';
import type { Maybe } from '../store/steps.ts';

const MAX_ENTRIES = 10_000;
const POSITIVE_TTL_MS = 60_000;
const NEGATIVE_TTL_MS = 5_000;

/** Whether a swarm may exist, and whether it is a private file's (admission by session only). */
export type SwarmAccess = 'public' | 'private' | 'unknown';

/**
 * Which info_hashes may have a swarm, and which of them are private, cached briefly (the
 * directory may be remote) and bounded (hostile announces for random hashes must not grow it).
 * An open tracker takes any hash, but a published private file's swarm stays private.
 */
export class PublishedHashes {
  private readonly cache = new Map<string, { access: SwarmAccess; fileId: string | undefined; expiresAtMs: number }>();

  constructor(
    private readonly directory: FileDirectory,
    private readonly open: boolean,
  ) {}

  /** Synchronous when cached (the announce path then needs no promise). */
  access(infoHash: string, nowMs: number): Maybe<SwarmAccess> {
    const cached = this.cache.get(infoHash);
    if (cached && cached.expiresAtMs > nowMs) return cached.access;
    return this.lookUp(infoHash, nowMs);
  }

  /** The file id of a hash looked up before (metrics labels); undefined if unknown or open. */
  fileIdOf(infoHash: string): string | undefined {
    return this.cache.get(infoHash)?.fileId;
  }

  private async lookUp(infoHash: string, nowMs: number): Promise<SwarmAccess> {
    const file = await this.directory.getByInfoHash(infoHash);
    const published = file !== undefined && file.manifest.info_hash === infoHash;
    const access: SwarmAccess = published && file.isPrivate ? 'private' : published || this.open ? 'public' : 'unknown';
    const allowed = published;
    this.cache.delete(infoHash);
    if (this.cache.size >= MAX_ENTRIES) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(infoHash, { access, fileId: allowed ? file.manifest.file_id : undefined, expiresAtMs: nowMs + (allowed ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS) });
    return access;
  }
}
