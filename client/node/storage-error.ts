import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PfError, isPfError } from '../../protocol/index.ts';

/** errno codes that mean the local disk (not the network, not a bug) stopped the download, in plain words. */
const STORAGE_CAUSES: Readonly<Record<string, string>> = {
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this file system',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such folder',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'is a folder',
  EIO: 'input/output error',
};

const MiB = 1024 * 1024;

export function isStorageErrno(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  return Object.hasOwn(STORAGE_CAUSES, code);
}

/** Bytes free to this user in the folder holding `path`, or undefined where the platform does not say. */
export async function freeBytesAt(path: string): Promise<number | undefined> {
  const stats = await statfs(dirname(path)).catch(() => undefined);
  return stats ? stats.bavail * stats.bsize : undefined;
}

/** "disk full: N MiB free at DIR, M MiB needed": the same words before a start and after a failed write. */
export function diskFullMessage(path: string, freeBytes: number | undefined, neededBytes: number): string {
  const free = freeBytes === undefined ? '' : `${(freeBytes / MiB).toFixed(1)} MiB free at ${dirname(path)}, `;
  return `disk full: ${free}${(neededBytes / MiB).toFixed(1)} MiB needed (for ${path})`;
}

/**
 * A PF_ERR_STORAGE_FAILED naming the path and the cause, for an errno of the local disk;
 * anything else is returned as it was (a closed handle on shutdown is not the disk's fault).
 */
export async function toStorageError(error: unknown, path: string, neededBytes: number): Promise<Error> {
  if (isPfError(error) || !isStorageErrno(error)) return error instanceof Error ? error : new Error(String(error));
  const code = String((error as NodeJS.ErrnoException).code);
  const message =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? diskFullMessage(path, await freeBytesAt(path), neededBytes)
      : code === 'ENOENT'
        ? `no such folder: ${dirname(path)} (${code})`
        : `${STORAGE_CAUSES[code]}: ${path} (${code})`;
  return new PfError('PF_ERR_STORAGE_FAILED', message, { cause: error });
}
