import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseJson, verifyManifest, type Manifest } from '../../protocol/index.ts';
import type { StorageStat } from '../storage/storage.ts';

/**
 * Manifests on disk under `<dataDir>/manifests/`, keyed by what identifies the content:
 * the source (folder path or S3 key), size, mtime and ETag. A changed file has a new key,
 * so it is rehashed and gets a new info_hash; an unchanged one is never rehashed.
 */
export class ManifestCache {
  private readonly dir: string;
  private readonly logger: Logger;

  constructor(dataDir: string, logger: Logger) {
    this.dir = join(dataDir, 'manifests');
    this.logger = logger;
  }

  static keyOf(sourceId: string, stat: StorageStat, name: string, contentType: string): string {
    const identity = JSON.stringify([sourceId, stat.sizeBytes, stat.mtimeMs, stat.etag, name, contentType]);
    return createHash('sha256').update(identity).digest('hex');
  }

  private pathOf(key: string): string {
    return join(this.dir, `${key}.json`);
  }

  /** The cached manifest, or undefined when absent or invalid (a bad file is a miss, not an error). */
  async get(key: string, expected: { fileId: string; sizeBytes: number }): Promise<Manifest | undefined> {
    let text: string;
    try {
      text = await readFile(this.pathOf(key), 'utf8');
    } catch {
      return undefined;
    }
    const parsed = parseJson(text);
    const checked = parsed.ok ? await verifyManifest(parsed.value) : parsed;
    if (!checked.ok) {
      this.logger.warn({ key, errors: checked.errors }, 'ignoring an invalid cached manifest');
      return undefined;
    }
    const manifest = checked.manifest;
    if (manifest.file_id !== expected.fileId || manifest.size !== expected.sizeBytes) return undefined;
    return manifest;
  }

  /** Written to a temporary name and renamed, so readers never see half a file. */
  async put(key: string, manifest: Manifest): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temporary = join(this.dir, `.${key}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(temporary, JSON.stringify(manifest));
      await rename(temporary, this.pathOf(key));
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }
}
