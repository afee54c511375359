import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PfError } from '../../protocol/index.ts';
import { isHiddenKey, type ReadOptions, type Storage, type StorageEntry, type StorageHandle, type StorageStat } from './storage.ts';

export interface S3StorageConfig {
  bucket: string;
  prefix: string;
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
}

/** The HTTP status of an SDK error, if it carries one. Foreign errors are unknown. */
export function s3StatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const metadata: unknown = error.$metadata;
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

function isNotFound(error: unknown): boolean {
  const status = s3StatusOf(error);
  const name = error instanceof Error ? error.name : '';
  return status === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

/** The storage-level error sent to clients: never the bucket, key or SDK message. */
function upstreamError(error: unknown): PfError {
  if (error instanceof PfError) return error;
  if (error instanceof Error && error.name === 'AbortError') return new PfError('PF_ERR_ABORTED', undefined, { cause: error });
  return new PfError('PF_ERR_UPSTREAM', undefined, { cause: error });
}

/**
 * Objects under one bucket prefix through @aws-sdk/client-s3 (HeadObject, ranged GetObject,
 * ListObjectsV2). Credentials come from the SDK's default chain (AWS_* environment etc.).
 */
export class S3Storage implements Storage {
  readonly description: string;
  readonly sourcePrefix: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;

  constructor(config: S3StorageConfig, client?: S3Client) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.description = `s3://${config.bucket}/${config.prefix}`;
    this.sourcePrefix = `s3:${config.bucket}/`;
    const clientConfig: S3ClientConfig = { region: config.region, forcePathStyle: config.forcePathStyle };
    if (config.endpoint) clientConfig.endpoint = config.endpoint;
    this.client = client ?? new S3Client(clientConfig);
  }

  /** Publishable: under the prefix, not a "folder" marker, no dot-segment after the prefix. */
  isValidKey(key: string): boolean {
    if (!key.startsWith(this.prefix) || key.endsWith('/') || key.length > 1024) return false;
    const rest = key.slice(this.prefix.length);
    return rest !== '' && !isHiddenKey(rest);
  }

  async *list(): AsyncIterable<StorageEntry> {
    let continuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, ContinuationToken: continuationToken }),
        );
      } catch (error) {
        throw upstreamError(error);
      }
      for (const object of page.Contents ?? []) {
        const key = object.Key;
        if (key === undefined || !this.isValidKey(key)) continue;
        if (typeof object.Size !== 'number' || !object.ETag || !object.LastModified) continue;
        yield { key, sizeBytes: object.Size, mtimeMs: object.LastModified.getTime(), etag: object.ETag };
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async stat(key: string): Promise<StorageStat | undefined> {
    if (!this.isValidKey(key)) return undefined;
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (typeof head.ContentLength !== 'number' || !head.ETag) throw new PfError('PF_ERR_UPSTREAM', 'HeadObject without size or ETag');
      return { sizeBytes: head.ContentLength, mtimeMs: head.LastModified?.getTime() ?? 0, etag: head.ETag };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw upstreamError(error);
    }
  }

  async open(key: string, expected?: StorageStat): Promise<StorageHandle | undefined> {
    const stat = expected ?? (await this.stat(key));
    if (!stat || !this.isValidKey(key)) return undefined;
    return new S3Handle(this, key, stat);
  }

  /** A SigV4 presigned GetObject URL. Its query is a credential: never log it. */
  async presignGet(key: string, expiresInSeconds: number, contentDisposition?: string): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: key, ResponseContentDisposition: contentDisposition });
    return getSignedUrl(this.client, command, { expiresIn: expiresInSeconds });
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}

class S3Handle implements StorageHandle {
  readonly sizeBytes: number;
  readonly mtimeMs: number;
  readonly etag: string;

  constructor(
    private readonly storage: S3Storage,
    private readonly key: string,
    stat: StorageStat,
  ) {
    this.sizeBytes = stat.sizeBytes;
    this.mtimeMs = stat.mtimeMs;
    this.etag = stat.etag;
  }

  async createReadStream(start: number, endInclusive: number, options?: ReadOptions): Promise<Readable> {
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    options?.signal?.addEventListener('abort', onAbort, { once: true });
    let body: unknown;
    try {
      const response = await this.storage.client.send(
        // IfMatch: the bytes must be those of the content the catalog (and manifest) describe.
        new GetObjectCommand({ Bucket: this.storage.bucket, Key: this.key, Range: `bytes=${start}-${endInclusive}`, IfMatch: this.etag }),
        { abortSignal: abort.signal },
      );
      body = response.Body;
      const expectedRange = `bytes ${start}-${endInclusive}/${this.sizeBytes}`;
      if (response.ContentRange !== undefined && response.ContentRange !== expectedRange) {
        throw new PfError('PF_ERR_UPSTREAM', 'the object changed since it was listed');
      }
      if (!(body instanceof Readable)) throw new PfError('PF_ERR_UPSTREAM', 'GetObject returned no stream');
    } catch (error) {
      options?.signal?.removeEventListener('abort', onAbort);
      if (body instanceof Readable) body.destroy();
      if (isNotFound(error)) throw new PfError('PF_ERR_FILE_NOT_FOUND', undefined, { cause: error });
      throw upstreamError(error);
    }
    const stream = body;
    // Destroying our end (client gone) aborts the HTTP request to S3 at once.
    stream.once('close', () => {
      options?.signal?.removeEventListener('abort', onAbort);
      if (!stream.readableEnded) abort.abort();
    });
    return stream;
  }

  async close(): Promise<void> {
    // Nothing held between reads: each read is its own GetObject.
  }
}
