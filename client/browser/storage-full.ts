import { PfError } from '../../protocol/index.ts';

const MiB = 1024 * 1024;

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** A write the browser refused for want of space: OPFS and IndexedDB both say QuotaExceededError. */
export function isQuotaError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // The OPFS worker's errors arrive as text ("OPFS: QuotaExceededError: …").
  return error.name === 'QuotaExceededError' || /\bQuotaExceededError\b/.test(error.message);
}

/** The origin's free quota by the browser's own estimate, if it gives one. */
async function estimatedFreeBytes(): Promise<number | undefined> {
  const estimate = await globalThis.navigator?.storage?.estimate?.().catch(() => undefined);
  if (estimate?.quota === undefined) return undefined;
  return Math.max(0, estimate.quota - (estimate.usage ?? 0));
}

/**
 * "Browser storage is full: N MiB free, M MiB needed", with what to do. `refusedBytes` is set
 * when a write was just refused: then less than that is free, whatever the estimate says
 * (Chromium's estimate ignores a quota an administrator or DevTools imposed).
 */
export async function storageFullError(neededBytes: number, refusedBytes?: number, cause?: unknown): Promise<PfError> {
  const estimate = await estimatedFreeBytes();
  const free =
    refusedBytes !== undefined && (estimate === undefined || estimate >= refusedBytes)
      ? `less than ${mib(refusedBytes)} free`
      : estimate === undefined
        ? 'unknown space free'
        : `${mib(estimate)} free`;
  return new PfError(
    'PF_ERR_STORAGE_QUOTA',
    `Browser storage is full: ${free}, ${mib(neededBytes)} needed. What is verified is kept; free up space (other sites' data, or disk space) and retry.`,
    { cause },
  );
}

/**
 * Refuse a file that will not fit, by the browser's estimate, before a byte is fetched; asks
 * for persistent storage too (so the browser does not evict a half-done download).
 */
export async function ensureQuota(sizeBytes: number, alreadyStoredBytes = 0): Promise<{ freeBytes: number | undefined; isPersisted: boolean }> {
  const isPersisted = await requestPersistence();
  const freeBytes = await estimatedFreeBytes();
  const neededBytes = Math.max(0, sizeBytes - alreadyStoredBytes);
  if (freeBytes !== undefined && neededBytes > freeBytes) throw await storageFullError(neededBytes);
  return { freeBytes, isPersisted };
}

/**
 * Ask the browser not to evict this origin's storage (it may say no: Chromium grants it to
 * sites a person uses often or has bookmarked). Whether it did, for the page to say.
 */
export async function requestPersistence(): Promise<boolean> {
  const storage = globalThis.navigator?.storage;
  if (!storage?.persist) return false;
  if (await storage.persisted?.().catch(() => false)) return true;
  return storage.persist().catch(() => false);
}
