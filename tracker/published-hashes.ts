import type { FileDirectory } from '../protocol/index.ts';
import type { Maybe } from './steps.ts';

const MAX_ENTRIES = 10_000;
const POSITIVE_TTL_MS = 60_000;
const NEGATIVE_TTL_MS = 5_000;

/**
 * Which info_hashes may have a swarm, cached briefly (the directory may be remote) and
 * bounded (hostile announces for random hashes must not grow it).
 */
export class PublishedHashes {
  private readonly cache = new Map<string, { allowed: boolean; fileId: string | undefined; expiresAtMs: number }>();

  constructor(
    private readonly directory: FileDirectory,
    private readonly open: boolean,
  ) {}

  /** Synchronous when open or cached (the announce path then needs no promise). */
  isAllowed(infoHash: string, nowMs: number): Maybe<boolean> {
    if (this.open) return true;
    const cached = this.cache.get(infoHash);
    if (cached && cached.expiresAtMs > nowMs) return cached.allowed;
    return this.lookUp(infoHash, nowMs);
  }

  /** The file id of a hash looked up before (metrics labels); undefined if unknown or open. */
  fileIdOf(infoHash: string): string | undefined {
    return this.cache.get(infoHash)?.fileId;
  }

  private async lookUp(infoHash: string, nowMs: number): Promise<boolean> {
    const file = await this.directory.getByInfoHash(infoHash);
    const allowed = file !== undefined && file.manifest.info_hash === infoHash;
    this.cache.delete(infoHash);
    if (this.cache.size >= MAX_ENTRIES) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(infoHash, { allowed, fileId: allowed ? file.manifest.file_id : undefined, expiresAtMs: nowMs + (allowed ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS) });
    return allowed;
  }
}
