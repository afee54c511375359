import { PfError, signedPath, type MintedUrl, type UrlMinter } from '../../protocol/index.ts';
import type { Catalog } from '../publish/catalog.ts';
import { contentDisposition } from '../http/content-disposition.ts';
import type { UrlSigner } from './signer.ts';

export interface MinterOptions {
  catalog: Catalog;
  signer: UrlSigner;
  /** Base URL (no trailing slash) that signed `/d/...` paths are appended to. */
  publicUrl: string;
  urlTtlSeconds: number;
  /** S3 mode: hand out SigV4 presigned GetObject URLs instead of our own signed URLs. */
  presignS3: boolean;
  nowSeconds?: () => number;
}

/** SigV4 presigned URLs cannot live longer than 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** UrlMinter (protocol/ports.ts): signed data-plane URLs at `publicUrl`, or S3 presigned URLs. */
export class OriginUrlMinter implements UrlMinter {
  private readonly publicUrl: string;

  constructor(private readonly options: MinterOptions) {
    this.publicUrl = options.publicUrl.replace(/\/+$/, '');
  }

  async mintDownloadUrl(fileId: string): Promise<MintedUrl> {
    const entry = this.options.catalog.get(fileId);
    if (!entry) throw new PfError('PF_ERR_FILE_NOT_FOUND');
    const nowSeconds = this.options.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
    // Only S3 storage presigns; asking the storage keeps the AWS SDK out of folder mode.
    if (this.options.presignS3 && entry.storage.presignGet) {
      const ttlSeconds = Math.min(this.options.urlTtlSeconds, MAX_PRESIGN_SECONDS);
      const url = await entry.storage.presignGet(entry.key, ttlSeconds, contentDisposition(entry.manifest.name));
      return { url, expiresAtSeconds: nowSeconds + ttlSeconds };
    }
    const path = signedPath(fileId, entry.manifest.name);
    const { pathAndQuery, expiresAtSeconds } = this.options.signer.signedPathAndQuery(path, nowSeconds, this.options.urlTtlSeconds);
    return { url: `${this.publicUrl}${pathAndQuery}`, expiresAtSeconds };
  }

  signPath(path: string): Promise<string> {
    const nowSeconds = this.options.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
    return Promise.resolve(this.options.signer.signedPathAndQuery(path, nowSeconds, this.options.urlTtlSeconds).pathAndQuery);
  }
}
