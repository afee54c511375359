import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { PfError } from '../../protocol/index.ts';
import { parseS3Url, readAddedSources, type AddedSource } from '../publish/added-sources.ts';
import type { CatalogCandidate } from '../publish/catalog.ts';
import { isPrivateKey, type OriginConfig, type VisibilityConfig } from '../config.ts';
import type { Storage } from './storage.ts';
import { FolderStorage } from './storage-folder.ts';
// A type only: the AWS SDK is loaded when a bucket is first used, so folder mode never loads it.
import type { S3Storage } from './storage-s3.ts';

/**
 * Where published files live: the root folder or bucket, plus the folders and buckets of
 * files added with `peerfill add` (opened on first use). Turns an added source into a
 * catalog candidate, under the root's identity when the root scan covers it.
 */
export class SourceLocator {
  private readonly extra = new Map<string, Storage>();

  private constructor(
    readonly root: Storage,
    private readonly s3Settings: OriginConfig['s3'],
    private readonly rootBucket: S3Storage | undefined,
  ) {}

  static async create(config: Pick<OriginConfig, 'filesDir' | 's3'>, hooks: { onUnpublishable?: (path: string, reason: string) => void } = {}): Promise<SourceLocator> {
    if (config.s3) {
      const { S3Storage } = await import('./storage-s3.ts');
      const bucket = new S3Storage(config.s3);
      return new SourceLocator(bucket, config.s3, bucket);
    }
    return new SourceLocator(await FolderStorage.create(config.filesDir ?? '', hooks), undefined, undefined);
  }

  /** What `peerfill add` was given: an `s3://bucket/key` URL, or a path to a regular file (symlinks resolved). */
  static async sourceOf(pathOrS3Url: string): Promise<AddedSource> {
    const s3Url = parseS3Url(pathOrS3Url);
    if (s3Url) return { kind: 's3', ...s3Url };
    const path = await realpath(resolve(pathOrS3Url)).catch(() => undefined);
    if (!path || !(await stat(path)).isFile()) throw new PfError('PF_ERR_FILE_NOT_FOUND', `not a regular file: ${pathOrS3Url}`);
    return { kind: 'path', path };
  }

  /** Where an added source lives; the root storage when the root scan covers it (same file id). */
  async locate(source: AddedSource): Promise<{ candidate: CatalogCandidate | undefined; isCoveredByRoot: boolean }> {
    let storage: Storage;
    let key: string;
    let sourceId: string;
    let isCoveredByRoot = false;
    const root = this.root;
    if (source.kind === 'path') {
      const rootKey = root instanceof FolderStorage ? root.keyOf(source.path) : undefined;
      if (rootKey !== undefined) {
        [storage, key, sourceId, isCoveredByRoot] = [root, rootKey, `${root.sourcePrefix}${rootKey}`, true];
      } else {
        [storage, key, sourceId] = [await this.folder(dirname(source.path)), basename(source.path), `path:${source.path}`];
      }
    } else if (this.rootBucket?.bucket === source.bucket && this.rootBucket.isValidKey(source.key)) {
      [storage, key, sourceId, isCoveredByRoot] = [root, source.key, `${root.sourcePrefix}${source.key}`, true];
    } else {
      const bucket = await this.bucket(source.bucket);
      [storage, key, sourceId] = [bucket, source.key, `${bucket.sourcePrefix}${source.key}`];
    }
    const found = await storage.stat(key);
    return { candidate: found && { sourceId, storage, key, stat: found, isPrivate: source.private === true }, isCoveredByRoot };
  }

  /**
   * Every file to publish: the root scan, then the added files that still exist. A file is
   * private by the folder and catalog settings, or when it was added with `--private` (which
   * also marks a file the root scan covers).
   */
  async *discover(dataDir: string, visibility?: VisibilityConfig): AsyncIterable<CatalogCandidate> {
    const added: { candidate: CatalogCandidate; isCoveredByRoot: boolean }[] = [];
    for (const source of await readAddedSources(dataDir)) {
      const located = await this.locate(source).catch(() => undefined);
      if (located?.candidate) added.push({ candidate: { ...located.candidate, isPrivate: source.private === true }, isCoveredByRoot: located.isCoveredByRoot });
    }
    const addedPrivate = new Set(added.filter((entry) => entry.candidate.isPrivate).map((entry) => entry.candidate.sourceId));
    for await (const entry of this.root.list()) {
      const { key, ...found } = entry;
      const sourceId = `${this.root.sourcePrefix}${key}`;
      yield { sourceId, storage: this.root, key, stat: found, isPrivate: isPrivateKey(visibility, key) || addedPrivate.has(sourceId) };
    }
    for (const entry of added) if (!entry.isCoveredByRoot) yield { ...entry.candidate, isPrivate: entry.candidate.isPrivate || (visibility?.isPrivateByDefault ?? false) };
  }

  async close(): Promise<void> {
    await this.root.close();
    await Promise.all([...this.extra.values()].map((storage) => storage.close()));
  }

  private async folder(dir: string): Promise<Storage> {
    const existing = this.extra.get(`dir:${dir}`);
    if (existing) return existing;
    const storage = await FolderStorage.create(dir);
    this.extra.set(`dir:${dir}`, storage);
    return storage;
  }

  private async bucket(name: string): Promise<Storage> {
    const existing = this.extra.get(`s3:${name}`);
    if (existing) return existing;
    const { S3Storage } = await import('./storage-s3.ts');
    const storage = new S3Storage({
      bucket: name,
      prefix: '',
      endpoint: this.s3Settings?.endpoint,
      region: this.s3Settings?.region ?? process.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: this.s3Settings?.forcePathStyle ?? false,
    });
    this.extra.set(`s3:${name}`, storage);
    return storage;
  }
}
