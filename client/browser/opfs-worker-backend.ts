import { parseOpfsReply, type OpfsRequest, type OpfsValue } from './opfs-messages.ts';
import type { StorageBackend } from './storage-backend.ts';

type Pending = { resolve: (value: OpfsValue) => void; reject: (error: Error) => void };
type RequestBody = OpfsRequest extends infer R ? (R extends OpfsRequest ? Omit<R, 'id'> : never) : never;

/** One worker per page serves every download's OPFS access. */
export class OpfsWorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #nextStore = 1;
  #failure: Error | undefined;

  constructor(workerUrl: string | URL) {
    this.#worker = new Worker(workerUrl, { type: 'module', name: 'peerfill-opfs' });
    this.#worker.onmessage = (event: MessageEvent<unknown>) => {
      const reply = parseOpfsReply(event.data);
      if (!reply) return;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(new Error(`OPFS: ${reply.error}`));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#failAll(new Error(`the OPFS worker failed: ${event.message || 'it could not be loaded'}`));
    };
  }

  newStoreId(): number {
    return this.#nextStore++;
  }

  call(body: RequestBody, transfer: Transferable[] = []): Promise<OpfsValue> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...body, id }, transfer);
    });
  }

  /** Whether this browser gives the worker synchronous access handles. */
  async probe(): Promise<boolean> {
    return (await this.call({ op: 'probe' }).catch(() => false)) === true;
  }

  terminate(): void {
    this.#worker.terminate();
    this.#failAll(new Error('the OPFS worker was stopped'));
  }

  #failAll(error: Error): void {
    this.#failure = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}

/** OPFS through synchronous access handles in the worker: one data file, chunks at their offsets. */
export class OpfsWorkerBackend implements StorageBackend {
  readonly kind = 'opfs-worker';
  readonly #client: OpfsWorkerClient;
  readonly #dir: string;
  readonly #store: number;
  #chunkSizeBytes = 0;

  constructor(client: OpfsWorkerClient, dir: string) {
    this.#client = client;
    this.#dir = dir;
    this.#store = client.newStoreId();
  }

  async open(sizeBytes: number, chunkSizeBytes: number): Promise<{ hadData: boolean }> {
    this.#chunkSizeBytes = chunkSizeBytes;
    const value = await this.#client.call({ op: 'open', store: this.#store, dir: this.#dir, sizeBytes, chunkSizeBytes });
    return { hadData: typeof value === 'object' && value !== null && 'hadData' in value && value.hadData };
  }

  async writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    // A copy is transferred: the engine may still hold the caller's view.
    const copy = bytes.slice();
    await this.#client.call({ op: 'write', store: this.#store, position: index * this.#chunkSizeBytes, bytes: copy }, [copy.buffer]);
  }

  async readChunk(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const value = await this.#client.call({ op: 'read', store: this.#store, position: index * this.#chunkSizeBytes + offset, length });
    return value instanceof Uint8Array && value.length === length ? value : undefined;
  }

  async flushData(): Promise<void> {
    await this.#client.call({ op: 'flush', store: this.#store });
  }

  async readState(): Promise<string | undefined> {
    const value = await this.#client.call({ op: 'readState', store: this.#store, dir: this.#dir });
    return typeof value === 'string' ? value : undefined;
  }

  async writeState(text: string): Promise<void> {
    await this.#client.call({ op: 'writeState', store: this.#store, text });
  }

  async seal(): Promise<void> {
    await this.#client.call({ op: 'seal', store: this.#store });
  }

  async file(): Promise<Blob> {
    // One data file: the sizes are already in it.
    const value = await this.#client.call({ op: 'file', store: this.#store, dir: this.#dir });
    if (!(value instanceof File)) throw new Error('the OPFS worker returned no file');
    return value;
  }

  async close(): Promise<void> {
    await this.#client.call({ op: 'close', store: this.#store });
  }

  async remove(): Promise<void> {
    await this.#client.call({ op: 'remove', store: this.#store, dir: this.#dir });
  }
}
