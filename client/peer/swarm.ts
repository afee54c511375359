import type SimplePeer from 'simple-peer';
import { Bitfield, chunkLength, type ConnectionCounts, type ConnectionType, type Manifest } from '../../protocol/index.ts';
import { TypedEmitter } from '../events.ts';
import { peerSource, type Scheduler, type SourceId } from '../scheduler.ts';
import { RateMeter } from '../rate-meter.ts';
import { Choker } from './choker.ts';
import { PeerRequests } from './peer-requests.ts';
import { Uploader } from './uploader.ts';
import { decodeLoading, PeerWire } from './wire.ts';

/** While HTTP fetches, peers hear our pf_loading again this often (their claims expire: LOADING_CLAIM_MS). */
const LOADING_REPEAT_MS = 3000;

export interface SwarmOptions {
  manifest: Manifest;
  peerIdHex: string;
  scheduler: Scheduler;
  /** Verify and store a chunk; false when it failed SHA-256 (the scheduler is told either way). */
  acceptChunk: (index: number, bytes: Uint8Array, source: SourceId) => Promise<boolean>;
  read: (index: number, offset: number, length: number) => Promise<Uint8Array | undefined>;
  /** Reserve in-flight memory for one chunk; false when the window is full. */
  reserve: (bytes: number) => boolean;
  unreserve: (bytes: number) => void;
  maxPeers: number;
  maxChunksPerPeer: number;
  maxBlocksPerPeer: number;
  uploadSlots: number;
  chokeIntervalMs: number;
  banAfterBadChunks: number;
  /** Close a peer that sends no block for this long while we wait on it [5 s]. */
  peerSilenceTimeoutMs?: number;
  warn: (message: string, details?: Record<string, unknown>) => void;
}

export interface SwarmEvents {
  peer: { peerIdHex: string; isConnected: boolean; peerCount: number; connectionType: ConnectionType | undefined };
  ban: { peerIdHex: string; reason: string };
  /** Block bytes received from a peer (before verification). */
  download: { bytes: number; source: SourceId };
  upload: { bytes: number };
}

interface Remote {
  wire: PeerWire;
  isInitiator: boolean;
  /** How the connection was made (undefined: its stats did not say, or it was handed in directly). */
  connectionType: ConnectionType | undefined;
  peerIdHex: string | undefined;
  source: SourceId | undefined;
  bitfield: Bitfield;
  /** Chunks it has that we still lack: we are interested while this is > 0. */
  wanted: number;
  requests: PeerRequests;
  uploader: Uploader;
  downloadRate: RateMeter;
  uploadRate: RateMeter;
  /** Which of our pf_loading sets it last got, and when. */
  loadingVersion: number;
  loadingSentAtMs: number;
  /** Snubbed (silent with requests outstanding) until then: asked for nothing; 0 = not snubbed. */
  snubbedUntilMs: number;
  /** Silences in a row without a block between them. */
  silences: number;
}

/** A peer silent this many times in a row (with a probe between) is closed: it is gone. */
const SILENCES_BEFORE_CLOSE = 3;

/**
 * The peers of one download: wire handshakes and checks, requests in 16 KiB blocks
 * from the chunks the scheduler assigns, verification with strikes and bans, and
 * seeding through a few unchoke slots plus an optimistic one.
 */
export class Swarm extends TypedEmitter<SwarmEvents> {
  readonly #options: SwarmOptions;
  readonly #remotes = new Set<Remote>();
  readonly #strikes = new Map<string, number>();
  readonly #banned = new Set<string>();
  readonly #choker: Choker;
  #chokeTimer: ReturnType<typeof setInterval> | undefined;
  #silenceTimer: ReturnType<typeof setInterval> | undefined;
  #isDestroyed = false;
  #isPaused = false;
  /** Bumped whenever the chunks our HTTP lanes fetch change. */
  #loadingVersion = 0;

  constructor(options: SwarmOptions) {
    super();
    this.#options = options;
    this.#choker = new Choker(options.uploadSlots);
    this.#chokeTimer = setInterval(() => this.#rechoke(), options.chokeIntervalMs);
    this.#silenceTimer = setInterval(() => {
      this.#snubSilent();
      this.#sendLoading(Date.now(), true);
    }, 1000);
  }

  get peerCount(): number {
    let count = 0;
    for (const remote of this.#remotes) if (remote.source) count++;
    return count;
  }

  /** Connections (including ones still handshaking) against the budget. */
  get connectionCount(): number {
    return this.#remotes.size;
  }

  hasRoom(): boolean {
    return !this.#isDestroyed && this.#remotes.size < this.#options.maxPeers;
  }

  isBanned(peerIdHex: string): boolean {
    return this.#banned.has(peerIdHex);
  }

  isConnectedTo(peerIdHex: string): boolean {
    for (const remote of this.#remotes) if (remote.peerIdHex === peerIdHex) return true;
    return false;
  }

  /** Handshaken peers by how their connections were made; `initiatedOnly` counts each connection at one end only. */
  connectionCounts(initiatedOnly = false): ConnectionCounts {
    const counts: ConnectionCounts = { host: 0, srflx: 0, relay: 0 };
    for (const remote of this.#remotes) {
      if (remote.source && remote.connectionType && (!initiatedOnly || remote.isInitiator)) counts[remote.connectionType]++;
    }
    return counts;
  }

  /** Take a connected data channel. `expectedPeerIdHex` is what the tracker said it is. */
  addChannel(channel: SimplePeer.Instance, isInitiator: boolean, expectedPeerIdHex?: string, connectionType?: ConnectionType): boolean {
    if (!this.hasRoom() || (expectedPeerIdHex !== undefined && this.#banned.has(expectedPeerIdHex))) {
      channel.destroy();
      return false;
    }
    const wire = new PeerWire(channel);
    const bitfieldLength = this.#options.scheduler.chunkCount;
    const remote: Remote = {
      wire,
      isInitiator,
      connectionType,
      peerIdHex: undefined,
      source: undefined,
      bitfield: new Bitfield(bitfieldLength),
      wanted: 0,
      requests: new PeerRequests(wire, this.#options),
      downloadRate: new RateMeter(),
      uploadRate: new RateMeter(),
      loadingVersion: -1,
      loadingSentAtMs: 0,
      snubbedUntilMs: 0,
      silences: 0,
      uploader: new Uploader(wire, {
        has: (index) => this.#options.scheduler.have.get(index),
        chunkLength: (index) => chunkLength(this.#options.manifest, index),
        read: this.#options.read,
        onUpload: (bytes) => {
          remote.uploadRate.add(bytes);
          this.emit('upload', { bytes });
        },
        onViolation: (reason) => this.#violation(remote, reason),
      }),
    };
    this.#remotes.add(remote);
    wire.on('handshake', ({ infoHashHex, peerIdHex }) => this.#onHandshake(remote, infoHashHex, peerIdHex, expectedPeerIdHex));
    wire.on('bitfield', (bytes) => this.#onBitfield(remote, bytes));
    wire.on('have', (index) => this.#onHave(remote, index));
    wire.on('loading', (bytes) => this.#onLoading(remote, bytes));
    wire.on('unchoke', () => {
      if (!remote.source || remote.snubbedUntilMs > 0) return;
      this.#options.scheduler.peerUnchoking(remote.source, true);
      this.#fill(remote);
    });
    wire.on('choke', () => {
      if (!remote.source) return;
      this.#options.scheduler.peerUnchoking(remote.source, false);
      this.#dropRequests(remote, false);
    });
    wire.on('interested', () => this.#onInterested(remote));
    wire.on('uninterested', () => wire.choke());
    wire.on('piece', ({ index, offset, bytes }) => this.#onPiece(remote, index, offset, bytes));
    wire.on('close', ({ reason }) => this.#onClose(remote, reason));
    wire.handshake(this.#options.manifest.info_hash, this.#options.peerIdHex);
    return true;
  }

  /**
   * We verified a chunk: tell every peer, and lose interest where it no longer applies. A
   * chunk from HTTP is announced at once: until then other clients may take it from the
   * origin too. One from a peer may wait a little (that peer already announced it).
   */
  broadcastHave(index: number, fromHttp: boolean): void {
    for (const remote of this.#remotes) {
      if (!remote.source) continue;
      // A peer that has the chunk will never ask us for it: no have (libtorrent's have
      // suppression). In bench/swarm that was half of them.
      if (!remote.bitfield.get(index)) {
        remote.wire.have(index, fromHttp);
        continue;
      }
      remote.wanted--;
      if (remote.wanted <= 0) remote.wire.uninterested();
    }
  }

  /** The chunks our HTTP lanes fetch changed: tell every peer that takes pf_loading. */
  announceLoading(): void {
    this.#loadingVersion++;
    this.#sendLoading(Date.now(), false);
  }

  /**
   * We no longer have these chunks (already cleared from the scheduler's have). A `have`
   * cannot be taken back in this protocol, so every handshaken peer that lacks one of them,
   * and so may ask for it, is disconnected: asking for a chunk we announced is no violation,
   * and leaving it unanswered would stall the peer until its deadline. It may reconnect,
   * and then gets a bitfield without them. Peers still handshaking get that bitfield anyway.
   */
  withdraw(indexes: readonly number[]): void {
    for (const remote of [...this.#remotes]) {
      if (!remote.source) continue;
      const lacked = indexes.filter((index) => !remote.bitfield.get(index));
      if (lacked.length > 0) remote.wire.close(`we no longer have chunk${lacked.length === 1 ? '' : 's'} ${lacked.join(', ')}`);
    }
  }

  /** Another source delivered `index`: cancel the peer's copy (endgame duplicate). */
  cancelChunk(index: number, source: SourceId): void {
    for (const remote of this.#remotes) {
      if (remote.source !== source) continue;
      if (!remote.requests.cancel(index)) return;
      this.#fill(remote);
    }
  }

  /** Deadline passed on these peer requests (already released in the scheduler): cancel them. */
  expire(expired: Array<{ index: number; source: SourceId }>): void {
    for (const { index, source } of expired) {
      this.cancelChunk(index, source);
      this.#options.warn('peer missed a chunk deadline', { index, source });
    }
  }

  /** Ask every peer for more work (new chunks were freed or the window has room). */
  fillAll(): void {
    if (this.#isPaused) return;
    for (const remote of this.#remotes) this.#fill(remote);
  }

  /** Stop asking for chunks (the download paused); keep serving what we have. */
  pauseRequests(): void {
    this.#isPaused = true;
    for (const remote of this.#remotes) this.#dropRequests(remote, true);
  }

  resumeRequests(): void {
    this.#isPaused = false;
    this.fillAll();
  }

  destroy(): void {
    if (this.#isDestroyed) return;
    this.#isDestroyed = true;
    clearInterval(this.#chokeTimer);
    clearInterval(this.#silenceTimer);
    for (const remote of [...this.#remotes]) remote.wire.close('swarm destroyed');
  }

  // --- wire events ------------------------------------------------------------

  #onHandshake(remote: Remote, infoHashHex: string, peerIdHex: string, expectedPeerIdHex: string | undefined): void {
    if (infoHashHex !== this.#options.manifest.info_hash) return remote.wire.close('handshake for another swarm');
    if (!/^[0-9a-f]{40}$/.test(peerIdHex) || peerIdHex === this.#options.peerIdHex) return remote.wire.close('bad peer id');
    if (expectedPeerIdHex !== undefined && peerIdHex !== expectedPeerIdHex) return remote.wire.close('peer id differs from the tracker');
    if (this.#banned.has(peerIdHex)) return remote.wire.close('banned');
    for (const other of this.#remotes) {
      if (other === remote || other.peerIdHex !== peerIdHex) continue;
      // Both sides keep the connection initiated by the lower peer id.
      const keepInitiatedByUs = this.#options.peerIdHex < peerIdHex;
      const loser = remote.isInitiator === keepInitiatedByUs ? other : remote;
      loser.wire.close('duplicate connection');
      if (loser === remote) return;
    }
    remote.peerIdHex = peerIdHex;
    remote.source = peerSource(peerIdHex);
    this.#options.scheduler.addPeer(remote.source, remote.bitfield);
    const have = this.#options.scheduler.have;
    if (have.count() > 0) remote.wire.bitfield(have.bytes);
    this.emit('peer', { peerIdHex, isConnected: true, peerCount: this.peerCount, connectionType: remote.connectionType });
  }

  #onBitfield(remote: Remote, bytes: Uint8Array): void {
    if (!remote.source) return this.#violation(remote, 'bitfield before handshake');
    const length = this.#options.scheduler.chunkCount;
    if (bytes.length !== Math.ceil(length / 8)) return this.#violation(remote, 'bitfield of the wrong length');
    const bitfield = new Bitfield(length, bytes);
    // Spare bits must be zero; the Bitfield constructor clears them, so compare.
    if (bitfield.bytes[bitfield.bytes.length - 1] !== bytes[bytes.length - 1]) return this.#violation(remote, 'bitfield spare bits set');
    remote.bitfield = bitfield;
    this.#options.scheduler.peerBitfield(remote.source, bitfield);
    remote.wanted = 0;
    const have = this.#options.scheduler.have;
    for (let index = 0; index < length; index++) if (bitfield.get(index) && !have.get(index)) remote.wanted++;
    this.#updateInterest(remote);
  }

  #onHave(remote: Remote, index: number): void {
    if (!remote.source) return this.#violation(remote, 'have before handshake');
    if (!Number.isInteger(index) || index < 0 || index >= this.#options.scheduler.chunkCount) return this.#violation(remote, `have ${index} out of range`);
    if (remote.bitfield.get(index)) return;
    this.#options.scheduler.peerHave(remote.source, index);
    if (!this.#options.scheduler.have.get(index)) remote.wanted++;
    this.#updateInterest(remote);
    this.#fill(remote);
  }

  #onLoading(remote: Remote, bytes: Uint8Array): void {
    if (!remote.source) return this.#violation(remote, 'pf_loading before handshake');
    const indices = decodeLoading(bytes, this.#options.scheduler.chunkCount);
    if (typeof indices === 'string') return this.#violation(remote, indices);
    this.#options.scheduler.peerLoading(remote.source, indices);
  }

  /**
   * pf_loading to peers that have not had the current set (new, or whose extended handshake
   * came since), and with `isRepeat` again to those whose copy of a non-empty set is aging.
   */
  #sendLoading(now: number, isRepeat: boolean): void {
    let runs: Array<{ start: number; count: number }> | undefined;
    for (const remote of this.#remotes) {
      if (!remote.source || !remote.wire.peerTakesLoading) continue;
      const isCurrent = remote.loadingVersion === this.#loadingVersion;
      if (isCurrent && !isRepeat) continue;
      runs ??= this.#options.scheduler.httpLoadingRuns();
      if (isCurrent && (runs.length === 0 || now - remote.loadingSentAtMs < LOADING_REPEAT_MS)) continue;
      // A peer new to us with nothing loading here needs no empty set.
      if (remote.loadingVersion < 0 && runs.length === 0) continue;
      remote.wire.loading(runs);
      remote.loadingVersion = this.#loadingVersion;
      remote.loadingSentAtMs = now;
    }
  }

  #onInterested(remote: Remote): void {
    let unchoked = 0;
    for (const other of this.#remotes) if (!other.wire.amChoking) unchoked++;
    if (unchoked < this.#options.uploadSlots + 1) remote.wire.unchoke();
  }

  #onPiece(remote: Remote, index: number, offset: number, bytes: Uint8Array): void {
    if (!remote.source) return this.#violation(remote, 'piece before handshake');
    remote.downloadRate.add(bytes.length);
    remote.silences = 0;
    this.emit('download', { bytes: bytes.length, source: remote.source });
    const assembly = remote.requests.receive(index, offset, bytes);
    if (!assembly) return;
    if (!assembly.isComplete) return this.#fill(remote);
    const source = remote.source;
    void this.#options.acceptChunk(index, assembly.bytes, source).then(
      (isGood) => {
        this.#options.unreserve(assembly.bytes.length);
        if (!isGood) this.#strike(remote, `chunk ${index} failed SHA-256`);
        this.fillAll();
      },
      (error: unknown) => {
        this.#options.unreserve(assembly.bytes.length);
        this.#options.warn('storing a chunk failed', { index, error: String(error) });
      },
    );
    this.#fill(remote);
  }

  #onClose(remote: Remote, reason: string): void {
    if (!this.#remotes.delete(remote)) return;
    remote.uploader.stop();
    // The scheduler forgets the peer whole just below.
    remote.requests.drop(undefined, false);
    if (remote.source) {
      this.#options.scheduler.removePeer(remote.source);
      this.emit('peer', { peerIdHex: remote.peerIdHex ?? '', isConnected: false, peerCount: this.peerCount, connectionType: remote.connectionType });
      if (!this.#isDestroyed) this.fillAll();
    }
    if (reason !== 'swarm destroyed' && reason !== 'duplicate connection') this.#options.warn('peer closed', { peer: remote.peerIdHex, reason });
  }

  // --- requests ---------------------------------------------------------------

  #updateInterest(remote: Remote): void {
    if (remote.wanted > 0) remote.wire.interested();
    else remote.wire.uninterested();
  }

  #fill(remote: Remote): void {
    if (this.#isPaused || this.#isDestroyed || !remote.source || remote.wire.isClosed || remote.wire.peerChoking || remote.snubbedUntilMs > 0) return;
    remote.requests.fill(remote.source);
  }

  #dropRequests(remote: Remote, sendCancel: boolean): void {
    remote.requests.drop(remote.source, sendCancel);
    this.fillAll();
  }

  /**
   * A peer silent with requests outstanding is snubbed, as libtorrent does: its requests are
   * cancelled and go elsewhere, and it counts as choking us (HTTP no longer leaves it the chunks
   * it "has"), but the connection stays: its haves and pf_loading keep the crowd from fetching
   * what it has from the origin again. On a lossy home link a data channel can stall for
   * seconds and recover (bench/lab L3: closing such peers lost 1-3 connections per client and
   * the knowledge they carried). After the silence it is asked again (a probe); a peer that
   * died without closing (kill -9, lost network), silent SILENCES_BEFORE_CLOSE times in a row,
   * is closed, rather than kept until ICE gives up tens of seconds later.
   */
  #snubSilent(): void {
    const limitMs = this.#options.peerSilenceTimeoutMs ?? 5000;
    const now = Date.now();
    for (const remote of [...this.#remotes]) {
      if (!remote.source) continue;
      if (remote.snubbedUntilMs > 0) {
        if (now < remote.snubbedUntilMs) continue;
        remote.snubbedUntilMs = 0;
        remote.requests.lastBlockAtMs = now;
        this.#options.scheduler.peerUnchoking(remote.source, !remote.wire.peerChoking);
        this.#fill(remote);
        continue;
      }
      const { outstandingBlocks, lastBlockAtMs } = remote.requests;
      if (outstandingBlocks === 0 || now - lastBlockAtMs <= limitMs) continue;
      const reason = `silent: no block for ${Math.round((now - lastBlockAtMs) / 1000)} s`;
      if (++remote.silences >= SILENCES_BEFORE_CLOSE) {
        remote.wire.close(reason);
        continue;
      }
      remote.snubbedUntilMs = now + limitMs;
      this.#options.scheduler.peerUnchoking(remote.source, false);
      this.#dropRequests(remote, true);
      this.#options.warn('peer snubbed', { peer: remote.peerIdHex, reason });
    }
  }

  // --- penalties and choking ----------------------------------------------------

  #strike(remote: Remote, reason: string): void {
    const id = remote.peerIdHex;
    if (id === undefined) return remote.wire.close(reason);
    if (this.#banned.has(id)) return remote.wire.close(`banned: ${reason}`);
    const strikes = (this.#strikes.get(id) ?? 0) + 1;
    this.#strikes.set(id, strikes);
    this.#options.warn('peer penalised', { peer: id, strikes, reason });
    if (strikes >= this.#options.banAfterBadChunks) {
      this.#banned.add(id);
      this.emit('ban', { peerIdHex: id, reason });
      remote.wire.close(`banned: ${reason}`);
    }
  }

  #violation(remote: Remote, reason: string): void {
    this.#options.warn('peer broke the wire protocol', { peer: remote.peerIdHex, reason });
    remote.wire.close(`protocol: ${reason}`);
  }

  #rechoke(): void {
    const isSeeding = this.#options.scheduler.isComplete();
    const candidates = [...this.#remotes]
      .filter((remote) => remote.source)
      .map((remote) => ({
        id: remote.source!,
        isInterested: remote.wire.peerInterested,
        rateBytesPerSecond: isSeeding ? remote.uploadRate.bytesPerSecond() : remote.downloadRate.bytesPerSecond(),
        remote,
      }));
    const unchoked = this.#choker.round(candidates);
    for (const candidate of candidates) {
      if (unchoked.has(candidate.id)) candidate.remote.wire.unchoke();
      else if (!candidate.remote.wire.amChoking) {
        candidate.remote.wire.choke();
        candidate.remote.uploader.clear();
      }
    }
  }
}
