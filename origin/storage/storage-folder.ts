import { constants, createReadStream, read, type ReadStream, type Stats } from 'node:fs';
import { once } from 'node:events';
import { open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { isHiddenKey, type ReadOptions, type Storage, type StorageEntry, type StorageHandle, type StorageStat } from './storage.ts';

const DEFAULT_HIGH_WATER_MARK_BYTES = 256 * 1024;
const REVALIDATE_MS = 1000;
const IDLE_CLOSE_MS = 2000;

interface SharedFile {
  file: FileHandle;
  stat: StorageStat;
  ino: number;
  refs: number;
  checkedAtMs: number;
  idleTimer: NodeJS.Timeout | undefined;
}
/** fs methods for streams over a borrowed fd: reads are real, close leaves the fd to its owner. */
const KEEP_FD_OPEN = {
  open: (_path: unknown, _flags: unknown, _mode: unknown, callback: (error: Error) => void) => callback(new Error('fd streams never open')),
  read,
  close: (_fd: number, callback: (error: null) => void) => callback(null),
};

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Printable ASCII as is, every other byte as \xNN: a name that can be logged and found with `ls -b`. */
function escapeBytes(bytes: Uint8Array): string {
  return [...bytes].map((byte) => (byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`)).join('');
}

/** nginx-style strong validator: mtime and size, both hex. */
export function folderEtag(stats: Pick<Stats, 'mtimeMs' | 'size'>): string {
  return `"${Math.floor(stats.mtimeMs).toString(16)}-${stats.size.toString(16)}"`;
}

function statOf(stats: Stats): StorageStat {
  return { sizeBytes: stats.size, mtimeMs: stats.mtimeMs, etag: folderEtag(stats) };
}

/** A key is a relative POSIX path of plain segments: no `..`, no absolute paths, no dot-files. */
export function isValidFolderKey(key: string): boolean {
  if (key === '' || key.length > 4096 || key.includes('\0') || key.startsWith('/')) return false;
  return key.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..') && !isHiddenKey(key);
}

/**
 * Files under one folder, recursively. Symlinks are followed only while they stay inside
 * the folder (and never into directories, so a link cannot loop). Every path is resolved
 * with realpath and checked against the root before it is opened.
 */
export class FolderStorage implements Storage {
  readonly description: string;
  readonly sourcePrefix = 'dir:';
  private readonly rootReal: string;
  /** key -> resolved real path, so the hot path skips realpath; re-checked on failure. */
  private readonly resolved = new Map<string, string>();

  private constructor(
    rootReal: string,
    private readonly onUnpublishable: ((path: string, reason: string) => void) | undefined,
  ) {
    this.rootReal = rootReal;
    this.description = `folder:${rootReal}`;
  }

  /** `onUnpublishable` hears of every file a scan leaves out for a reason an operator can fix (a name that is not UTF-8). */
  static async create(root: string, options: { onUnpublishable?: (path: string, reason: string) => void } = {}): Promise<FolderStorage> {
    const rootReal = await realpath(root);
    if (!(await stat(rootReal)).isDirectory()) throw new Error(`not a directory: ${root}`);
    return new FolderStorage(rootReal, options.onUnpublishable);
  }

  get rootPath(): string {
    return this.rootReal;
  }

  /** The key of an absolute path inside the root, or undefined when it is outside or hidden. */
  keyOf(absolutePath: string): string | undefined {
    const rel = relative(this.rootReal, absolutePath);
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) return undefined;
    const key = rel.split(sep).join('/');
    return isValidFolderKey(key) ? key : undefined;
  }

  private isInside(realPath: string): boolean {
    return realPath.startsWith(this.rootReal + sep);
  }

  private async resolve(key: string, useCache: boolean): Promise<string | undefined> {
    if (!isValidFolderKey(key)) return undefined;
    const cached = useCache ? this.resolved.get(key) : undefined;
    if (cached) return cached;
    let real: string;
    try {
      real = await realpath(join(this.rootReal, ...key.split('/')));
    } catch {
      return undefined;
    }
    if (!this.isInside(real)) return undefined;
    this.resolved.set(key, real);
    return real;
  }

  async *list(): AsyncIterable<StorageEntry> {
    yield* this.walk(this.rootReal, '');
  }

  private async *walk(dirPath: string, prefix: string): AsyncIterable<StorageEntry> {
    // Raw names: one that is not UTF-8 cannot be a key (or a URL); it is reported, not published.
    const entries = await readdir(dirPath, { encoding: 'buffer', withFileTypes: true });
    const names: { name: string; kind: 'file' | 'dir' | 'link' }[] = [];
    for (const dirent of entries) {
      const name = utf8OrUndefined(dirent.name);
      if (name === undefined) {
        this.onUnpublishable?.(`${prefix}${escapeBytes(dirent.name)}`, 'the name is not valid UTF-8');
        continue;
      }
      if (name.startsWith('.')) continue;
      if (dirent.isFile()) names.push({ name, kind: 'file' });
      else if (dirent.isDirectory()) names.push({ name, kind: 'dir' });
      else if (dirent.isSymbolicLink()) names.push({ name, kind: 'link' });
    }
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { name, kind } of names) {
      const key = prefix + name;
      const path = join(dirPath, name);
      if (kind === 'dir') {
        yield* this.walk(path, `${key}/`);
        continue;
      }
      const real = await this.resolve(key, false);
      if (!real) continue;
      try {
        const stats = await stat(real);
        if (stats.isFile()) yield { key, ...statOf(stats) };
      } catch {
        // Vanished between readdir and stat: it is simply not published this time.
      }
    }
  }

  async stat(key: string): Promise<StorageStat | undefined> {
    const real = await this.resolve(key, false);
    if (!real) return undefined;
    try {
      const stats = await stat(real);
      return stats.isFile() ? statOf(stats) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Open descriptors shared by concurrent requests for the same file, as nginx's
   * open_file_cache does: a hot file costs one positional read per request instead of
   * open + fstat + read + close. Revalidated with stat() at most every REVALIDATE_MS (a
   * replaced or rewritten file gets a fresh descriptor) and closed IDLE_CLOSE_MS after
   * its last request ends.
   */
  private readonly shared = new Map<string, SharedFile>();

  async open(key: string, expected?: StorageStat): Promise<StorageHandle | undefined> {
    let entry = this.shared.get(key);
    // A caller that knows of other content (a rescan saw a change) forces a revalidation.
    const isStale = entry !== undefined && expected !== undefined && expected.etag !== entry.stat.etag;
    if (entry && (isStale || performance.now() - entry.checkedAtMs > REVALIDATE_MS)) {
      const real = this.resolved.get(key);
      const current = real === undefined ? undefined : await stat(real).catch(() => undefined);
      if (current?.ino === entry.ino && current.size === entry.stat.sizeBytes && current.mtimeMs === entry.stat.mtimeMs) {
        entry.checkedAtMs = performance.now();
      } else {
        this.retire(key, entry);
        entry = undefined;
      }
    }
    entry ??= await this.openShared(key);
    if (!entry) return undefined;
    entry.refs++;
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    const acquired = entry;
    return new FolderHandle(acquired.file, acquired.stat, () => this.release(key, acquired));
  }

  private retire(key: string, entry: SharedFile): void {
    if (this.shared.get(key) === entry) this.shared.delete(key);
    if (entry.refs === 0) void entry.file.close().catch(() => undefined);
  }

  private release(key: string, entry: SharedFile): void {
    entry.refs--;
    if (entry.refs > 0) return;
    if (this.shared.get(key) !== entry) {
      void entry.file.close().catch(() => undefined);
      return;
    }
    entry.idleTimer = setTimeout(() => {
      if (entry.refs === 0) this.retire(key, entry);
    }, IDLE_CLOSE_MS);
    entry.idleTimer.unref();
  }

  private async openShared(key: string): Promise<SharedFile | undefined> {
    for (const useCache of [true, false]) {
      const real = await this.resolve(key, useCache);
      if (!real) return undefined;
      let file: FileHandle;
      try {
        // O_NOFOLLOW: the resolved path's last component must not have become a symlink.
        file = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch {
        this.resolved.delete(key);
        continue;
      }
      const stats = await file.stat().catch(() => undefined);
      if (!stats?.isFile()) {
        await file.close();
        this.resolved.delete(key);
        continue;
      }
      const entry: SharedFile = { file, stat: statOf(stats), ino: stats.ino, refs: 0, checkedAtMs: performance.now(), idleTimer: undefined };
      const raced = this.shared.get(key);
      if (raced) {
        // Another request opened it meanwhile: use that one.
        await file.close();
        return raced;
      }
      this.shared.set(key, entry);
      return entry;
    }
    return undefined;
  }

  /** Closes idle shared descriptors; ones still in use close when their last request ends. */
  close(): Promise<void> {
    this.resolved.clear();
    for (const [key, entry] of [...this.shared]) {
      if (entry.idleTimer) clearTimeout(entry.idleTimer);
      this.retire(key, entry);
    }
    return Promise.resolve();
  }
}

class FolderHandle implements StorageHandle {
  readonly sizeBytes: number;
  readonly mtimeMs: number;
  readonly etag: string;
  private readonly file: FileHandle;
  private readonly release: () => void;
  private closed = false;
  private readonly streams = new Set<ReadStream>();

  constructor(file: FileHandle, stats: StorageStat, release: () => void) {
    this.file = file;
    this.release = release;
    this.sizeBytes = stats.sizeBytes;
    this.mtimeMs = stats.mtimeMs;
    this.etag = stats.etag;
  }

  createReadStream(start: number, endInclusive: number, options?: ReadOptions): Promise<Readable> {
    if (this.closed) return Promise.reject(new Error('handle closed'));
    // The stream reads through the handle's fd but never closes it (its `close` is a no-op):
    // one handle serves several ranges (multipart), and close() below owns the fd.
    const stream = createReadStream('', {
      fd: this.file.fd,
      fs: KEEP_FD_OPEN,
      start,
      end: endInclusive,
      autoClose: true,
      highWaterMark: options?.highWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK_BYTES,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    return Promise.resolve(stream);
  }

  async readInto(target: Uint8Array, start: number): Promise<number> {
    if (this.closed) throw new Error('handle closed');
    let filled = 0;
    while (filled < target.byteLength) {
      const { bytesRead } = await this.file.read(target, filled, target.byteLength - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled;
  }

  /** fstat of the open descriptor: an in-place rewrite shows in size or mtime (a replaced file keeps its old inode here). */
  async hasChanged(): Promise<boolean> {
    if (this.closed) return false;
    const stats = await this.file.stat();
    return stats.size !== this.sizeBytes || stats.mtimeMs !== this.mtimeMs;
  }

  /** Destroys this request's streams, waits until none of its reads is in flight, then lets go of the fd. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.streams].map((stream) => {
        const closed = once(stream, 'close').catch(() => undefined);
        stream.destroy();
        return closed;
      }),
    );
    this.release();
  }
}
