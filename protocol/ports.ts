import type { Manifest } from './manifest.ts';

/**
 * What the tracker needs from the origin, as an interface. The composition root
 * (bin/) wires the origin's implementation in; the tracker never imports origin/.
 */
export interface PublishedFile {
  manifest: Manifest;
  /** Private: unlisted; its manifest, sessions and swarm need the publisher's grant or key. */
  isPrivate?: boolean;
}

export interface FileDirectory {
  /** The current manifest of a published file, or undefined. */
  getByFileId(fileId: string): Promise<PublishedFile | undefined>;
  /** Lookup by swarm id (hex info_hash), for accepting announces. */
  getByInfoHash(infoHash: string): Promise<PublishedFile | undefined>;
}

export interface MintedUrl {
  url: string;
  /** Unix seconds. */
  expiresAtSeconds: number;
}

export interface UrlMinter {
  /** A signed (or S3-presigned) download URL for the file's current content. */
  mintDownloadUrl(fileId: string): Promise<MintedUrl>;
  /** `path?exp=&kid=&sig=` for another GET path of the origin (a private file's manifest). */
  signPath(path: string): Promise<string>;
}
