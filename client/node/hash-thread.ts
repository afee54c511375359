import { Worker } from 'node:worker_threads';
import type { FileHasher } from '../verify.ts';

/** Shared buffers that bytes in hand are copied into for the worker: the bound on bytes queued. */
const SLOTS = 4;

type Request =
  | { op: 'bytes'; stream: number; slot: SharedArrayBuffer; length: number }
  | { op: 'file'; stream: number; path: string; start: number; end: number }
  | { op: 'digest'; stream: number };

/**
 * The whole-file SHA-256 of Node downloads, on one worker thread per process. On the main
 * thread it cost as much as the chunk checks (1.3 s per 2 GiB in bench/client) plus reading
 * every out-of-order chunk back; here the worker reads the stored file itself (page cache),
 * so the main thread only says how far the verified prefix reaches. Bytes already in hand
 * (a chunk that is next in file order) are copied into one of a few SharedArrayBuffer slots,
 * reused: a fresh buffer per message cost a page fault per 4 KiB on both sides.
 */
class HashThread {
  #worker: Worker | undefined;
  #nextId = 0;
  #nextStream = 0;
  readonly #pending = new Map<number, { slot?: SharedArrayBuffer; resolve: (sha256: string) => void; reject: (error: Error) => void }>();
  readonly #free: SharedArrayBuffer[] = [];
  #slotCount = 0;
  readonly #waiting: Array<() => void> = [];

  fileHasher(path: string | undefined): FileHasher {
    const stream = this.#nextStream++;
    let isDone = false;
    // Each request waits for the one before it to be queued, so bytes reach the worker in file order.
    let tail = Promise.resolve();
    const enqueue = (queue: () => Promise<void>): Promise<void> => {
      if (isDone) throw new Error('file hasher: update after digest');
      tail = tail.then(queue);
      return tail;
    };
    const hasher: FileHasher = {
      update: (bytes) =>
        enqueue(async () => {
          const slot = await this.#fill(bytes);
          void this.#ask({ op: 'bytes', stream, slot, length: bytes.length }, slot).catch(() => undefined);
        }),
      digestHex: async () => {
        await tail;
        isDone = true;
        return this.#ask({ op: 'digest', stream });
      },
    };
    if (path !== undefined) {
      hasher.updateFromStore = (start, end) => enqueue(() => this.#ask({ op: 'file', stream, path, start, end }).then(() => undefined));
    }
    return hasher;
  }

  /** A free slot holding a copy of `bytes`; waits while every slot is in the worker's hands. */
  async #fill(bytes: Uint8Array): Promise<SharedArrayBuffer> {
    for (;;) {
      const index = this.#free.findIndex((slot) => slot.byteLength >= bytes.length);
      let slot: SharedArrayBuffer | undefined;
      if (index >= 0) slot = this.#free.splice(index, 1)[0];
      else if (this.#free.length > 0) {
        // Too small (chunk sizes differ between files): replace it.
        this.#free.pop();
        slot = new SharedArrayBuffer(bytes.length);
      } else if (this.#slotCount < SLOTS) {
        this.#slotCount++;
        slot = new SharedArrayBuffer(bytes.length);
      }
      if (slot) {
        new Uint8Array(slot, 0, bytes.length).set(bytes);
        return slot;
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  #ask(request: Request, slot?: SharedArrayBuffer): Promise<string> {
    const worker = this.#start();
    const id = this.#nextId++;
    const answer = new Promise<string>((resolve, reject) => this.#pending.set(id, { slot, resolve, reject }));
    worker.postMessage({ ...request, id });
    worker.ref();
    return answer;
  }

  #settle(id: number, error: Error | undefined, sha256: string | undefined): void {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (!pending) return;
    if (pending.slot) {
      this.#free.push(pending.slot);
      this.#waiting.shift()?.();
    }
    if (error) pending.reject(error);
    else pending.resolve(sha256 ?? '');
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    worker.unref();
    worker.on('message', (reply: { id: number; sha256?: string; error?: string }) => {
      this.#settle(reply.id, reply.error === undefined ? undefined : new Error(`hash worker: ${reply.error}`), reply.sha256);
      // Idle, it must not keep the process alive.
      if (this.#pending.size === 0) worker.unref();
    });
    const fail = (error: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const id of [...this.#pending.keys()]) this.#settle(id, error, undefined);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`hash worker exited (${code})`)));
    this.#worker = worker;
    return worker;
  }
}

const thread = new HashThread();

/**
 * An incremental whole-file SHA-256 on the hash thread; given the path the store writes,
 * it also reads stored bytes there itself (updateFromStore).
 */
export const createThreadFileHasher = (path?: string): FileHasher => thread.fileHasher(path);
