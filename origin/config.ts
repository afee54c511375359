import { PfError, type SigningKey } from '../protocol/index.ts';

export interface OriginConfig {
  /** Folder mode (the default when no `s3`): every regular file under it, recursively. */
  filesDir?: string;
  s3?: { bucket: string; prefix: string; endpoint?: string; region: string; forcePathStyle: boolean; presign: boolean };
  /** Manifests cache, generated signing key, files added with `peerfill add`. */
  dataDir: string;
  /** Base URL minted URLs point at (a CDN edge, or this server). */
  publicUrl: string;
  /** From PEERFILL_SIGNING_KEYS; undefined: one key generated and kept under dataDir. */
  signingKeys?: SigningKey[];
  /** Lifetime of minted URLs. Default 3600. */
  urlTtlSeconds: number;
  /** Origin-wide cap on data-plane body bytes; undefined or 0: unlimited. */
  egressBytesPerSecond?: number;
  /** Threads hashing chunks while the main thread hashes the whole file. Default 1. */
  hashWorkers?: number;
  /** Visibility: files are public unless one of these says private. */
  visibility?: VisibilityConfig;
  /** PEERFILL_PUBLISHER_KEYS: sign grants and serve as API keys for private files. */
  publisherKeys?: SigningKey[];
}

export interface VisibilityConfig {
  /** The catalog's default for every file (PEERFILL_DEFAULT_VISIBILITY). Default public. */
  isPrivateByDefault?: boolean;
  /** Folders (key prefixes under the files folder or bucket prefix, e.g. `premium/`) whose files are private. */
  privatePrefixes?: string[];
}

/** Whether a file of the root scan is private by the folder and catalog settings (`add --private` is recorded per file). */
export function isPrivateKey(visibility: VisibilityConfig | undefined, key: string): boolean {
  if (visibility?.isPrivateByDefault) return true;
  return (visibility?.privatePrefixes ?? []).some((prefix) => key.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`));

}

export function checkOriginConfig(config: OriginConfig): void {
  if (!config.s3 && !config.filesDir) throw new PfError('PF_ERR_CONFIG', 'either filesDir or s3 is required');
  if (!Number.isInteger(config.urlTtlSeconds) || config.urlTtlSeconds <= 0) throw new PfError('PF_ERR_CONFIG', 'urlTtlSeconds must be a positive integer');
}
