import { OPFS_ROOT_DIR } from './opfs-messages.ts';
import type { StorageBackend } from './storage-backend.ts';

/**
 * OPFS without synchronous access handles (no worker, or an older browser): one file per
 * chunk, each written through a writable stream. A writable commits atomically on close
 * and one per chunk stays small, where a single big file would be copied on every commit.
 */
export class OpfsAsyncBackend implements StorageBackend {
  readonly kind = 'opfs-async';
  readonly #dirName: string;
  #dir: FileSystemDirectoryHandle | undefined;
  #chunks: FileSystemDirectoryHandle | undefined;

  constructor(dirName: string) {
    this.#dirName = dirName;
  }

  static isSupported(): boolean {
    return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function' && typeof FileSystemFileHandle !== 'undefined' && 'createWritable' in FileSystemFileHandle.prototype;
  }

  async open(_sizeBytes: number, _chunkSizeBytes: number): Promise<{ hadData: boolean }> {
    const dir = await this.#directory(true);
    const existing = await dir.getDirectoryHandle('chunks').catch(() => undefined);
    // Chunks past a foreign layout's end are never read; the rest are re-verified if doubted.
    const hadData = existing !== undefined;
    this.#chunks = existing ?? (await dir.getDirectoryHandle('chunks', { create: true }));
    return { hadData };
  }

  async writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    const file = await this.#requireChunks().getFileHandle(`c${index}`, { create: true });
    const writable = await file.createWritable();
    try {
      await writable.write(bytes.slice());
      await writable.close();
    } catch (error) {
      await writable.abort().catch(() => undefined);
      throw error;
    }
  }

  async readChunk(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    try {
      const file = await (await this.#requireChunks().getFileHandle(`c${index}`)).getFile();
      if (offset + length > file.size) return undefined;
      return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
    } catch {
      return undefined;
    }
  }

  async flushData(): Promise<void> {
    // Each chunk's writable already committed on close.
  }

  async readState(): Promise<string | undefined> {
    try {
      const dir = await this.#directory(false);
      const file = await (await dir.getFileHandle('state')).getFile();
      return file.size === 0 ? undefined : await file.text();
    } catch {
      return undefined;
    }
  }

  async writeState(text: string): Promise<void> {
    const dir = await this.#directory(true);
    const writable = await (await dir.getFileHandle('state', { create: true })).createWritable();
    await writable.write(text);
    await writable.close();
  }

  async seal(): Promise<void> {
    // Nothing to release: every chunk is its own committed file.
  }

  /** Disk-backed File parts glued into one Blob: nothing is copied into memory. */
  async file(sizeBytes: number, chunkSizeBytes: number): Promise<Blob> {
    const chunkCount = sizeBytes === 0 ? 1 : Math.ceil(sizeBytes / chunkSizeBytes);
    const chunks = await (await this.#directory(false)).getDirectoryHandle('chunks');
    const parts: File[] = [];
    for (let index = 0; index < chunkCount; index++) parts.push(await (await chunks.getFileHandle(`c${index}`)).getFile());
    return new Blob(parts);
  }

  async close(): Promise<void> {
    this.#chunks = undefined;
  }

  async remove(): Promise<void> {
    const root = await navigator.storage.getDirectory();
    const base = await root.getDirectoryHandle(OPFS_ROOT_DIR, { create: true });
    await base.removeEntry(this.#dirName, { recursive: true }).catch(() => undefined);
  }

  async #directory(create: boolean): Promise<FileSystemDirectoryHandle> {
    if (this.#dir) return this.#dir;
    const root = await navigator.storage.getDirectory();
    const base = await root.getDirectoryHandle(OPFS_ROOT_DIR, { create: true });
    const dir = await base.getDirectoryHandle(this.#dirName, { create });
    this.#dir = dir;
    return dir;
  }

  #requireChunks(): FileSystemDirectoryHandle {
    if (!this.#chunks) throw new Error('the OPFS store is not open');
    return this.#chunks;
  }
}
