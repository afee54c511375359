/**
 * The OPFS worker: synchronous access handles (only available in dedicated workers) give
 * positioned writes and reads into one data file per download, and a real flush().
 * Each download's operations run in order; different downloads do not wait on each other.
 */
import { OPFS_ROOT_DIR, parseOpfsRequest, type OpfsReply, type OpfsRequest, type OpfsValue } from './opfs-messages.ts';

interface SyncAccessHandle {
  read(buffer: Uint8Array, options?: { at?: number }): number;
  write(buffer: Uint8Array, options?: { at?: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

type SyncFileHandle = FileSystemFileHandle & { createSyncAccessHandle(): Promise<SyncAccessHandle> };

interface OpenStore {
  dir: FileSystemDirectoryHandle;
  dataHandle: FileSystemFileHandle;
  data: SyncAccessHandle | undefined;
  state: SyncAccessHandle;
  /** Once sealed, the data handle is released and reads come from this snapshot. */
  sealedFile: File | undefined;
}

const stores = new Map<number, OpenStore>();
const queues = new Map<number, Promise<unknown>>();

function hasSyncAccess(handle: FileSystemFileHandle): handle is SyncFileHandle {
  return 'createSyncAccessHandle' in handle && typeof handle.createSyncAccessHandle === 'function';
}

async function downloadDir(name: string, create: boolean): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  const base = await root.getDirectoryHandle(OPFS_ROOT_DIR, { create: true });
  return base.getDirectoryHandle(name, { create });
}

async function syncHandle(dir: FileSystemDirectoryHandle, name: string): Promise<{ file: FileSystemFileHandle; access: SyncAccessHandle }> {
  const file = await dir.getFileHandle(name, { create: true });
  if (!hasSyncAccess(file)) throw new Error('synchronous access handles are not available');
  return { file, access: await file.createSyncAccessHandle() };
}

function requireStore(id: number): OpenStore {
  const store = stores.get(id);
  if (!store) throw new Error(`store ${id} is not open`);
  return store;
}

function readAll(handle: SyncAccessHandle, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = handle.read(out.subarray(filled), { at: position + filled });
    if (count === 0) break;
    filled += count;
  }
  return filled === length ? out : out.subarray(0, filled);
}

function writeAll(handle: SyncAccessHandle, position: number, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) {
    const count = handle.write(bytes.subarray(written), { at: position + written });
    // Chromium reports a write past the quota as a short (or empty) write, not always as an exception.
    if (count <= 0) throw new DOMException('OPFS write made no progress: storage is full', 'QuotaExceededError');
    written += count;
  }
}

async function handle(request: OpfsRequest): Promise<OpfsValue> {
  switch (request.op) {
    case 'probe': {
      const dir = await downloadDir('probe', true);
      const { access } = await syncHandle(dir, 'probe');
      access.close();
      return true;
    }
    case 'open': {
      const previous = stores.get(request.store);
      if (previous) return { hadData: true };
      const dir = await downloadDir(request.dir, true);
      const data = await syncHandle(dir, 'data');
      let state: SyncAccessHandle;
      try {
        state = (await syncHandle(dir, 'state')).access;
      } catch (error) {
        data.access.close();
        throw error;
      }
      const hadData = data.access.getSize() > 0;
      // Grow to the full size once: positioned writes then never extend the file.
      if (data.access.getSize() !== request.sizeBytes) data.access.truncate(request.sizeBytes);
      if (data.access.getSize() !== request.sizeBytes) {
        data.access.close();
        state.close();
        throw new DOMException(`OPFS could not make room for ${request.sizeBytes} bytes: storage is full`, 'QuotaExceededError');
      }
      stores.set(request.store, { dir, dataHandle: data.file, data: data.access, state, sealedFile: undefined });
      return { hadData };
    }
    case 'write': {
      const store = requireStore(request.store);
      if (!store.data) throw new Error('the file is sealed');
      writeAll(store.data, request.position, request.bytes);
      return undefined;
    }
    case 'read': {
      const store = requireStore(request.store);
      if (store.data) return readAll(store.data, request.position, request.length);
      const sealed = store.sealedFile!;
      return new Uint8Array(await sealed.slice(request.position, request.position + request.length).arrayBuffer());
    }
    case 'flush':
      requireStore(request.store).data?.flush();
      return undefined;
    case 'readState': {
      const open = stores.get(request.store);
      if (open) {
        const size = open.state.getSize();
        return size === 0 ? undefined : new TextDecoder().decode(readAll(open.state, 0, size));
      }
      // Not open (listing after a reload): read without taking the lock.
      try {
        const dir = await downloadDir(request.dir, false);
        const file = await (await dir.getFileHandle('state')).getFile();
        return file.size === 0 ? undefined : await file.text();
      } catch {
        return undefined;
      }
    }
    case 'writeState': {
      const state = requireStore(request.store).state;
      const bytes = new TextEncoder().encode(request.text);
      // A torn write here is detected by the record's checksum and leads to re-verification.
      state.truncate(0);
      writeAll(state, 0, bytes);
      state.flush();
      return undefined;
    }
    case 'seal': {
      const store = requireStore(request.store);
      if (store.data) {
        store.data.flush();
        store.data.close();
        store.data = undefined;
        store.sealedFile = await store.dataHandle.getFile();
      }
      return undefined;
    }
    case 'file': {
      const store = stores.get(request.store);
      if (store?.data) throw new Error('the file is not sealed');
      if (store?.sealedFile) return store.sealedFile;
      // Closed since: nothing holds the lock, read the file directly.
      return (await (await downloadDir(request.dir, false)).getFileHandle('data')).getFile();
    }
    case 'close': {
      const store = stores.get(request.store);
      stores.delete(request.store);
      store?.data?.close();
      store?.state.close();
      return undefined;
    }
    case 'remove': {
      const store = stores.get(request.store);
      stores.delete(request.store);
      store?.data?.close();
      store?.state.close();
      const root = await navigator.storage.getDirectory();
      const base = await root.getDirectoryHandle(OPFS_ROOT_DIR, { create: true });
      await base.removeEntry(request.dir, { recursive: true }).catch(() => undefined);
      return undefined;
    }
  }
}

/** A dedicated worker's postMessage (the DOM typings declare Window's; the options form is the same in both). */
function reply(message: OpfsReply, transfer: Transferable[] = []): void {
  postMessage(message, { transfer });
}

addEventListener('message', (event: MessageEvent<unknown>) => {
  const request = parseOpfsRequest(event.data);
  if (!request) return;
  const key = request.op === 'probe' ? -1 : request.store;
  const previous = queues.get(key) ?? Promise.resolve();
  const next = previous.then(
    () => handle(request),
    () => handle(request),
  );
  queues.set(key, next);
  next.then(
    (value) => reply({ id: request.id, ok: true, value }, value instanceof Uint8Array ? [value.buffer] : []),
    (error: unknown) => reply({ id: request.id, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
  );
  const forget = (): void => {
    if (queues.get(key) === next) queues.delete(key);
  };
  next.then(forget, forget);
});
