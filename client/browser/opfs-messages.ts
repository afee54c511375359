/** The messages between the page and `opfs-worker.ts` (one request, one reply, by id). */
export type OpfsRequest =
  | { id: number; op: 'probe' }
  | { id: number; op: 'open'; store: number; dir: string; sizeBytes: number; chunkSizeBytes: number }
  | { id: number; op: 'write'; store: number; position: number; bytes: Uint8Array }
  | { id: number; op: 'read'; store: number; position: number; length: number }
  | { id: number; op: 'flush'; store: number }
  | { id: number; op: 'readState'; store: number; dir: string }
  | { id: number; op: 'writeState'; store: number; text: string }
  | { id: number; op: 'seal'; store: number }
  | { id: number; op: 'file'; store: number; dir: string }
  | { id: number; op: 'close'; store: number }
  | { id: number; op: 'remove'; store: number; dir: string };

export type OpfsReply = { id: number; ok: true; value: OpfsValue } | { id: number; ok: false; error: string };

export type OpfsValue = undefined | boolean | string | Uint8Array | File | { hadData: boolean };

/** The OPFS folder every peerfill download lives under. */
export const OPFS_ROOT_DIR = 'peerfill';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A download's folder name: what `storeKey()` produces, nothing that could climb out. */
export function isDirName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(value);
}

/** Check a request before the worker acts on it. */
export function parseOpfsRequest(data: unknown): OpfsRequest | undefined {
  if (!isRecord(data) || !isCount(data.id)) return undefined;
  const id = data.id;
  if (data.op === 'probe') return { id, op: 'probe' };
  if (!isCount(data.store)) return undefined;
  const store = data.store;
  switch (data.op) {
    case 'open':
      return isDirName(data.dir) && isCount(data.sizeBytes) && isCount(data.chunkSizeBytes) && data.chunkSizeBytes > 0
        ? { id, op: 'open', store, dir: data.dir, sizeBytes: data.sizeBytes, chunkSizeBytes: data.chunkSizeBytes }
        : undefined;
    case 'write':
      return isCount(data.position) && data.bytes instanceof Uint8Array ? { id, op: 'write', store, position: data.position, bytes: data.bytes } : undefined;
    case 'read':
      return isCount(data.position) && isCount(data.length) ? { id, op: 'read', store, position: data.position, length: data.length } : undefined;
    case 'readState':
    case 'remove':
    case 'file':
      return isDirName(data.dir) ? { id, op: data.op, store, dir: data.dir } : undefined;
    case 'writeState':
      return typeof data.text === 'string' ? { id, op: 'writeState', store, text: data.text } : undefined;
    case 'flush':
    case 'seal':
    case 'close':
      return { id, op: data.op, store };
    default:
      return undefined;
  }
}

/** Check a reply before the page trusts it. */
export function parseOpfsReply(data: unknown): OpfsReply | undefined {
  if (!isRecord(data) || !isCount(data.id)) return undefined;
  if (data.ok === false) return { id: data.id, ok: false, error: typeof data.error === 'string' ? data.error : 'unknown worker error' };
  if (data.ok !== true) return undefined;
  const value = data.value;
  if (value === undefined || typeof value === 'boolean' || typeof value === 'string' || value instanceof Uint8Array || value instanceof File) return { id: data.id, ok: true, value };
  if (isRecord(value) && typeof value.hadData === 'boolean') return { id: data.id, ok: true, value: { hadData: value.hadData } };
  return undefined;
}
