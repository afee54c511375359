import { PfError, signPath, signedPath, type FileDirectory, type SigningKey, type UrlMinter } from '../protocol/index.ts';

export interface SigningMinterOptions {
  /** Base URL the data plane is reached at (a CDN edge, or the origin). */
  publicUrl: string;
  /** The first key signs; the origin or edge must know all of them. */
  keys: readonly SigningKey[];
  /** Lifetime of a minted URL; default 3600 s. */
  ttlSeconds?: number;
  /** Where file names come from (the signed path is /d/<file_id>/<name>). */
  directory: FileDirectory;
  /** The clock (ms); Date.now by default. */
  now?: () => number;
}

/** A UrlMinter for a standalone tracker: signs /d/ URLs with keys it shares with the origin. */
export function createSigningMinter(options: SigningMinterOptions): UrlMinter {
  const key = options.keys[0];
  if (!key) throw new PfError('PF_ERR_CONFIG', 'createSigningMinter needs at least one signing key');
  const base = options.publicUrl.replace(/\/+$/, '');
  const ttlSeconds = options.ttlSeconds ?? 3600;
  const now = options.now ?? Date.now;
  return {
    async mintDownloadUrl(fileId: string) {
      const file = await options.directory.getByFileId(fileId);
      if (!file) throw new PfError('PF_ERR_FILE_NOT_FOUND');
      const path = signedPath(fileId, file.manifest.name);
      const expiresAtSeconds = Math.floor(now() / 1000) + ttlSeconds;
      const query = await signPath(key, 'GET', path, expiresAtSeconds);
      const search = new URLSearchParams({ exp: query.exp, kid: query.kid, sig: query.sig });
      return { url: `${base}${path}?${search.toString()}`, expiresAtSeconds };
    },
    async signPath(path: string) {
      const query = await signPath(key, 'GET', path, Math.floor(now() / 1000) + ttlSeconds);
      return `${path}?${new URLSearchParams({ exp: query.exp, kid: query.kid, sig: query.sig }).toString()}`;
    },
  };
}
