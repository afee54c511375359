import Wire from 'bittorrent-protocol';
import { TypedEmitter } from '../events.ts';

/** Events of one BitTorrent wire, with everything from the peer still unchecked. */
export interface WireEvents {
  handshake: { infoHashHex: string; peerIdHex: string };
  /** Raw bitfield bytes: the caller checks their length. */
  bitfield: Uint8Array;
  have: number;
  choke: undefined;
  unchoke: undefined;
  interested: undefined;
  uninterested: undefined;
  request: { index: number; offset: number; length: number };
  piece: { index: number; offset: number; bytes: Uint8Array };
  cancel: { index: number; offset: number; length: number };
  /** The peer's pf_loading message, raw: see decodeLoading. */
  loading: Uint8Array;
  close: { reason: string };
}

/**
 * BEP 10 extension of ours: the chunks a peer is fetching from HTTP right now, so that the
 * other clients of a flash crowd leave them to it instead of fetching them from the origin
 * too (the origin's bytes are the scarce ones; a have comes only once a chunk is complete).
 * The payload is the whole current set, as up to MAX_LOADING_RUNS (start, count) pairs of
 * big-endian uint32; an empty payload clears it. Peers without the extension never get it.
 */
export const LOADING_EXTENSION = 'pf_loading';
export const MAX_LOADING_RUNS = 64;

export function encodeLoading(runs: ReadonlyArray<{ start: number; count: number }>): Uint8Array {
  const kept = runs.slice(0, MAX_LOADING_RUNS);
  const bytes = new Uint8Array(8 * kept.length);
  const view = new DataView(bytes.buffer);
  kept.forEach((run, i) => {
    view.setUint32(8 * i, run.start);
    view.setUint32(8 * i + 4, run.count);
  });
  return bytes;
}

/** The chunk indices of a pf_loading payload, or why it is not one (for `chunkCount` chunks). */
export function decodeLoading(bytes: Uint8Array, chunkCount: number): number[] | string {
  if (bytes.length % 8 !== 0) return `pf_loading of ${bytes.length} bytes (not a multiple of 8)`;
  if (bytes.length / 8 > MAX_LOADING_RUNS) return `pf_loading with ${bytes.length / 8} runs (at most ${MAX_LOADING_RUNS})`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const indices: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += 8) {
    const start = view.getUint32(offset);
    const count = view.getUint32(offset + 4);
    if (count === 0 || start >= chunkCount || count > chunkCount - start) return `pf_loading run ${start}+${count} outside ${chunkCount} chunks`;
    for (let index = start; index < start + count; index++) indices.push(index);
  }
  return indices;
}

/**
 * Wire output is gathered for one turn of the event loop and sent as one data-channel
 * message of at most this size: every send into a data channel costs a call across
 * threads in @roamhq/wrtc (and a piece was two sends, header then block), which dominated
 * a swarm client's CPU. The wire is a byte stream, so message boundaries do not matter.
 * One message holds the uploader's read of 8 blocks with their 13-byte piece headers and
 * the haves riding along: at exactly 128 KiB the headers pushed every such answer into a
 * second, 16 KiB message (bench/swarm: 5,000 sends per client, 3,900 at this size). Well
 * under the channel's maximum message size (256 KiB in @roamhq/wrtc and Chrome).
 */
export const MAX_MESSAGE_BYTES = 160 * 1024;
/**
 * What simple-peer lets sit in the data channel before it holds back its stream (its
 * MAX_BUFFERED_AMOUNT): past that, writes wait in the stream, where writableLength sees them.
 */
const CHANNEL_BUFFER_BYTES = 64 * 1024;
/**
 * A `have` for a chunk from a peer waits at most this long for other bytes to the same peer
 * to ride along with. One message per peer per verified chunk was as many data-channel sends
 * as all the uploads. (A chunk from HTTP is announced at once: see Swarm.broadcastHave.)
 */
const HAVE_DELAY_MS = 300;

/**
 * What the wire needs of a data channel: a simple-peer, or any duplex stream (tests). A write
 * that leaves writableLength at 0 has been handed on and copied (a data channel's send copies),
 * so the wire may reuse those bytes for its next message.
 */
export interface WireChannel {
  on(event: 'data', listener: (data: unknown) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  write(bytes: Uint8Array): unknown;
  destroy(): unknown;
  readonly writableLength: number;
}

/**
 * bittorrent-protocol's Wire over a simple-peer data channel. The typings of Wire are
 * loose (`any` in places), so this is the one place that touches it; everything leaves
 * here as checked numbers and Uint8Arrays.
 */
export class PeerWire extends TypedEmitter<WireEvents> {
  readonly #wire: Wire.Wire;
  readonly #channel: WireChannel;
  #isClosed = false;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  /**
   * Where a batch is joined into one message, kept from one flush to the next while the channel
   * takes each message at once: a fresh ArrayBuffer per message was much of the garbage a
   * seeding client made, and V8 counts such memory towards its next full collection.
   */
  #joinBuffer: Uint8Array | undefined;
  /** A flush is queued for the end of this synchronous burst (portable: no setImmediate in browsers). */
  #isFlushQueued = false;
  #pendingHaves: number[] = [];
  #haveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(channel: WireChannel) {
    super();
    this.#channel = channel;
    this.#wire = new Wire();
    const wire = this.#wire;
    const emitLoading = (bytes: Uint8Array) => this.emit('loading', bytes);
    // Named on the prototype, as bittorrent-protocol's use() requires; messages arrive as raw bytes.
    class LoadingExtension implements Wire.Extension {
      declare name: string;
      onMessage(bytes: unknown): void {
        if (bytes instanceof Uint8Array) emitLoading(bytes);
      }
    }
    LoadingExtension.prototype.name = LOADING_EXTENSION;
    wire.use(LoadingExtension);
    // Manual plumbing instead of pipe(): the data channel's own buffer is what we watch
    // for backpressure (see backlogBytes), and a closed side must close the other.
    wire.on('data', (data: unknown) => {
      if (data instanceof Uint8Array && !this.#isClosed) this.#enqueue(data);
    });
    channel.on('data', (data: unknown) => {
      if (data instanceof Uint8Array && !this.#isClosed) wire.write(data);
    });
    channel.on('close', () => this.close('channel closed'));
    channel.on('error', (error: Error) => this.close(`channel error: ${error.message}`));
    wire.on('error', (error: unknown) => this.close(`wire error: ${String(error)}`));
    wire.on('close', () => this.close('wire closed'));
    wire.on('finish', () => this.close('wire finished'));

    wire.on('handshake', (infoHash: unknown, peerId: unknown) => {
      if (typeof infoHash === 'string' && typeof peerId === 'string') this.emit('handshake', { infoHashHex: infoHash, peerIdHex: peerId });
    });
    wire.on('bitfield', (bitfield: unknown) => {
      const bytes = typeof bitfield === 'object' && bitfield !== null && 'buffer' in bitfield ? bitfield.buffer : undefined;
      if (bytes instanceof Uint8Array) this.emit('bitfield', bytes);
    });
    wire.on('have', (index: unknown) => {
      if (typeof index === 'number') this.emit('have', index);
    });
    wire.on('choke', () => this.emit('choke', undefined));
    wire.on('unchoke', () => this.emit('unchoke', undefined));
    wire.on('interested', () => this.emit('interested', undefined));
    wire.on('uninterested', () => this.emit('uninterested', undefined));
    wire.on('request', (index: unknown, offset: unknown, length: unknown) => {
      if (typeof index === 'number' && typeof offset === 'number' && typeof length === 'number') this.emit('request', { index, offset, length });
    });
    wire.on('piece', (index: unknown, offset: unknown, bytes: unknown) => {
      if (typeof index === 'number' && typeof offset === 'number' && bytes instanceof Uint8Array) this.emit('piece', { index, offset, bytes });
    });
    wire.on('cancel', (index: unknown, offset: unknown, length: unknown) => {
      if (typeof index === 'number' && typeof offset === 'number' && typeof length === 'number') this.emit('cancel', { index, offset, length });
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Bytes queued towards the peer and not yet on the wire (within CHANNEL_BUFFER_BYTES): the
   * upload backpressure signal. Not the channel's bufferedAmount: in @roamhq/wrtc each read
   * is a blocking call across threads, and simple-peer already reads it after every send to
   * hold its stream back; reading it here too cost a swarm client 14 s of a 100 s run.
   */
  get backlogBytes(): number {
    return this.#batchBytes + this.#channel.writableLength + (this.#channel.writableLength > 0 ? CHANNEL_BUFFER_BYTES : 0);
  }

  #enqueue(data: Uint8Array): void {
    const haves = this.#takeHaves();
    if (haves) this.#append(haves);
    this.#append(data);
  }

  /** The pending haves as wire messages (length 5, id 4, index; what Wire.have would send). */
  #takeHaves(): Uint8Array | undefined {
    const indices = this.#pendingHaves;
    if (indices.length === 0) return undefined;
    this.#pendingHaves = [];
    clearTimeout(this.#haveTimer);
    this.#haveTimer = undefined;
    const bytes = new Uint8Array(9 * indices.length);
    const view = new DataView(bytes.buffer);
    indices.forEach((index, i) => {
      view.setUint32(9 * i, 5);
      bytes[9 * i + 4] = 4;
      view.setUint32(9 * i + 5, index);
    });
    return bytes;
  }

  #append(data: Uint8Array): void {
    // Never a message over MAX_MESSAGE_BYTES: past the channel's maximum message size (256 KiB
    // in @roamhq/wrtc and Chrome) a send kills the process (bench/swarm lost 7 of 8 clients).
    // Data that fits is kept whole; only data larger than a message is cut.
    if (this.#batchBytes + data.length > MAX_MESSAGE_BYTES) this.#flush();
    for (let offset = 0; offset < data.length; offset += MAX_MESSAGE_BYTES) {
      const piece = data.subarray(offset, offset + MAX_MESSAGE_BYTES);
      this.#batch.push(piece);
      this.#batchBytes += piece.length;
      if (this.#batchBytes >= MAX_MESSAGE_BYTES) this.#flush();
    }
    if (this.#batchBytes > 0 && !this.#isFlushQueued) {
      this.#isFlushQueued = true;
      queueMicrotask(() => {
        this.#isFlushQueued = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    const batch = this.#batch;
    const size = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    if (this.#isClosed || batch.length === 0) return;
    if (batch.length === 1) {
      this.#channel.write(batch[0]!);
      return;
    }
    const joined = this.#joinBuffer ?? new Uint8Array(MAX_MESSAGE_BYTES);
    this.#joinBuffer = undefined;
    let offset = 0;
    for (const part of batch) {
      joined.set(part, offset);
      offset += part.length;
    }
    this.#channel.write(joined.subarray(0, size));
    // Nothing waits in the channel's stream: the message went into the data channel, which
    // copied it. Otherwise the stream still holds these bytes and the next batch needs new ones.
    if (this.#channel.writableLength === 0) this.#joinBuffer = joined;
  }

  handshake(infoHashHex: string, peerIdHex: string): void {
    this.#wire.handshake(infoHashHex, peerIdHex);
  }

  bitfield(bytes: Uint8Array): void {
    this.#wire.bitfield(bytes);
  }

  /**
   * Tell the peer we have `index`: with the next bytes we send it, or within HAVE_DELAY_MS;
   * `isUrgent` sends it (and any waiting) in this turn.
   */
  have(index: number, isUrgent = false): void {
    if (this.#isClosed) return;
    this.#pendingHaves.push(index);
    if (isUrgent) {
      this.#append(this.#takeHaves()!);
      return;
    }
    this.#haveTimer ??= setTimeout(() => {
      this.#haveTimer = undefined;
      const haves = this.#takeHaves();
      if (haves && !this.#isClosed) this.#append(haves);
    }, HAVE_DELAY_MS);
  }

  choke(): void {
    if (!this.#wire.amChoking) this.#wire.choke();
  }

  unchoke(): void {
    if (this.#wire.amChoking) this.#wire.unchoke();
  }

  interested(): void {
    if (!this.#wire.amInterested) this.#wire.interested();
  }

  uninterested(): void {
    if (this.#wire.amInterested) this.#wire.uninterested();
  }

  get amChoking(): boolean {
    return this.#wire.amChoking;
  }

  get amInterested(): boolean {
    return this.#wire.amInterested;
  }

  get peerChoking(): boolean {
    return this.#wire.peerChoking;
  }

  get peerInterested(): boolean {
    return this.#wire.peerInterested;
  }

  /** Whether the peer's extended handshake named pf_loading (before it, or from others: no). */
  get peerTakesLoading(): boolean {
    return typeof this.#wire.peerExtendedMapping[LOADING_EXTENSION] === 'number';
  }

  /** Tell the peer which chunks we are fetching from HTTP now (the whole set; see encodeLoading). */
  loading(runs: ReadonlyArray<{ start: number; count: number }>): void {
    if (this.#isClosed || !this.peerTakesLoading) return;
    this.#wire.extended(LOADING_EXTENSION, encodeLoading(runs));
  }

  /** Ask for a block; data arrives as a `piece` event. */
  request(index: number, offset: number, length: number): void {
    this.#wire.request(index, offset, length, () => undefined);
  }

  cancel(index: number, offset: number, length: number): void {
    this.#wire.cancel(index, offset, length);
  }

  piece(index: number, offset: number, bytes: Uint8Array): void {
    if (this.#isClosed) return;
    // The wire also tracks the request; answering one it dropped (cancelled) is harmless.
    this.#wire.piece(index, offset, bytes as Buffer);
  }

  close(reason: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    clearTimeout(this.#haveTimer);
    this.#pendingHaves = [];
    this.#batch = [];
    this.#batchBytes = 0;
    this.#wire.destroy();
    this.#channel.destroy();
    this.emit('close', { reason });
  }
}
