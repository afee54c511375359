import type SimplePeer from 'simple-peer';
import { PfError, chunkCount, isPfError, type Manifest } from '../protocol/index.ts';
import type { ChunkStore, ResumeData } from './chunk-store.ts';
import { DownloadSession, type DownloadTarget } from './download-session.ts';
import { TypedEmitter } from './events.ts';
import { FileHashTracker } from './file-hash-tracker.ts';
import { HttpFiller } from './http-filler.ts';
import { HttpLanes } from './http-lanes.ts';
import { HybridPolicy } from './hybrid-policy.ts';
import { InFlightWindow } from './in-flight-window.ts';
import type { ResolvedOptions } from './options.ts';
import { PeerStack } from './peer/peer-stack.ts';
import type { Swarm } from './peer/swarm.ts';
import { ProgressCounter, type ProgressInfo } from './progress.ts';
import { Scheduler, isPeerSource, peerIdOf, peerSource, type SourceId } from './scheduler.ts';
import { SessionClient, fetchApiRequest } from './session-client.ts';
import type { TrackerClient } from './tracker-client.ts';
import { chunkLength, verifyChunk } from './verify.ts';

/** HTTP duplicates a peer's chunk in endgame only after the peer has had it this long. */
const HTTP_ENDGAME_MIN_AGE_MS = 3000;

export interface DownloadEvents {
  progress: ProgressInfo;
  /** A chunk passed SHA-256 and is stored. */
  chunk: { index: number; source: 'peer' | 'http'; peerIdHex?: string };
  peer: { peerIdHex: string; isConnected: boolean; peerCount: number };
  /** A peer sent bad chunks too often and is banned for this download. */
  ban: { peerIdHex: string; reason: string };
  /** Every chunk verified and the whole-file SHA-256 matched the manifest. */
  done: { sha256: string; progress: ProgressInfo };
  /** A fatal error: the download stopped. Per-peer problems are warnings, never this. */
  error: PfError;
  status: { status: 'running' | 'paused' | 'seeding' | 'done' | 'stopped' };
}

export type { DownloadTarget } from './download-session.ts';

/** What a running download is made of, created together once its manifest and store are open. */
interface Parts {
  manifest: Manifest;
  scheduler: Scheduler;
  policy: HybridPolicy;
  hashTracker: FileHashTracker;
  lanes: HttpLanes;
  /** Both undefined when peers are off. */
  swarm: Swarm | undefined;
  tracker: TrackerClient | undefined;
}

/**
 * One file: session, manifest, peers and HTTP together. Created by `Client.download()`.
 */
export class Download extends TypedEmitter<DownloadEvents> {
  readonly target: DownloadTarget;
  manifest: Manifest | undefined;
  readonly #store: ChunkStore;
  readonly #options: ResolvedOptions;
  readonly #session: DownloadSession;
  readonly #counter = new ProgressCounter();
  readonly #inFlight: InFlightWindow;
  /** Chunks being written right now: a second verified copy must not be stored or counted again. */
  readonly #storing = new Set<number>();
  /** Everything made once the manifest and the store are open; undefined before. */
  #parts: Parts | undefined;
  #peerStack: PeerStack | undefined;
  #timers: Array<ReturnType<typeof setInterval>> = [];
  #status: DownloadEvents['status']['status'] = 'running';
  #isFinishing = false;
  #isDestroyed = false;
  #started: Promise<void> | undefined;
  #seedTimer: ReturnType<typeof setTimeout> | undefined;
  #startedAtMs = Date.now();

  constructor(target: DownloadTarget, store: ChunkStore, options: ResolvedOptions) {
    super();
    this.target = target;
    this.#store = store;
    this.#options = options;
    this.#inFlight = new InFlightWindow(options.maxInFlightBytes, () => this.#wake());
    this.#session = new DownloadSession({
      target,
      api: new SessionClient(target.serverUrl, options.apiRequest ?? fetchApiRequest(options.fetch)),
      store,
      clientId: options.clientId,
      warn: (message, details) => this.#warn(message, details),
    });
  }

  get status(): DownloadEvents['status']['status'] {
    return this.#status;
  }

  get sessionId(): string | undefined {
    return this.#session.state?.session_id;
  }

  /** Start (idempotent). Errors are also emitted as `error`. */
  start(): Promise<void> {
    this.#started ??= this.#run().catch((error: unknown) => {
      this.#fail(error);
    });
    return this.#started;
  }

  progress(): ProgressInfo {
    const parts = this.#parts;
    return this.#counter.snapshot(this.manifest?.size ?? 0, parts?.swarm?.peerCount ?? 0, parts?.scheduler.have.count() ?? 0, parts?.scheduler.chunkCount ?? 0, parts?.policy.info());
  }

  /** Stop fetching, make local state durable and PATCH the session `paused`. Peers are still served. */
  async pause(): Promise<void> {
    if (this.#status !== 'running') return;
    this.#status = 'paused';
    this.#parts?.swarm?.pauseRequests();
    // Announced once the lanes have ended: a chunk being verified and stored when the pause
    // came is counted before, and that count goes out as progress first, so a listener that
    // shows progress on its interval shows the count that then stands still.
    await this.#parts?.lanes.stop();
    if (this.#status === 'paused') {
      this.emit('progress', this.progress());
      this.emit('status', { status: 'paused' });
    }
    await this.#store.flush();
    this.#parts?.tracker?.announce('paused');
    await this.#patchSession({ status: 'paused' }).catch((error: unknown) => this.#warn('session PATCH paused failed', { error: String(error) }));
  }

  /** Continue after pause(): a fresh download URL from the session, then fetching again. */
  async resume(): Promise<void> {
    if (this.#status !== 'paused') return;
    this.#setStatus('running');
    await this.#session.refreshUrl().catch((error: unknown) => this.#warn('session PATCH resumed failed', { error: String(error) }));
    this.#parts?.swarm?.resumeRequests();
    this.#parts?.policy.restart();
    this.#parts?.tracker?.announce('update');
    this.#parts?.lanes.start();
  }

  /** Stop everything and close the store (without publishing an incomplete file). */
  async destroy(): Promise<void> {
    if (this.#isDestroyed) return;
    this.#isDestroyed = true;
    if (this.#status !== 'done') this.#setStatus('stopped');
    void this.#parts?.lanes.stop();
    clearTimeout(this.#seedTimer);
    for (const timer of this.#timers) clearInterval(timer);
    this.#parts?.tracker?.stop('stopped');
    this.#parts?.swarm?.destroy();
    try {
      await this.#store.flush();
    } finally {
      await this.#store.close();
    }
  }

  // --- start-up ---------------------------------------------------------------

  async #run(): Promise<void> {
    const session = await this.#session.open(await this.#store.loadResumeData());
    const manifest = await this.#session.manifest();
    if (this.#options.usePeers) this.#peerStack ??= await PeerStack.load(this.#options);
    this.manifest = manifest;
    if (this.#isDestroyed) return;

    const have = await this.#store.open(manifest, (index, bytes) => verifyChunk(manifest, index, bytes, this.#options.hashChunk));
    if (have.length !== chunkCount(manifest.size, manifest.chunk_size)) throw new PfError('PF_ERR_INTERNAL', 'the store returned a bitfield of the wrong length');
    for (let index = 0; index < have.length; index++) if (have.get(index)) this.#counter.resumedBytes += chunkLength(manifest, index);
    this.#counter.verifiedBytes = this.#counter.resumedBytes;
    const options = this.#options;
    const policy = new HybridPolicy({ speedFloorBitsPerSecond: options.speedFloorBitsPerSecond ?? this.#session.speedFloorBitsPerSecond });
    const scheduler = new Scheduler({
      policy,
      chunkBytes: (index) => chunkLength(manifest, index),
      chunkCount: have.length,
      have,
      random: options.random,
      httpInFileOrder: !options.usePeers,
      httpEndgameMinAgeMs: HTTP_ENDGAME_MIN_AGE_MS,
      peerDeadlineMs: (index) => Math.max(options.peerDeadlineMinMs, (chunkLength(manifest, index) / options.peerMinBytesPerSecond) * 1000),
    });
    const hashTracker = new FileHashTracker(manifest, have, options.createFileHasher(this.#store), (index, offset, length) => this.#store.read(index, offset, length));
    const filler = new HttpFiller({
      manifest,
      getUrl: () => this.#session.downloadUrl,
      refreshUrl: () => this.#session.refreshUrl(),
      fetch: options.fetch,
      rangeGet: options.rangeGet,
      maxAttempts: options.httpMaxAttempts,
      idleTimeoutMs: options.httpIdleTimeoutMs,
      onBytes: (bytes) => {
        this.#counter.httpReceivedBytes += bytes;
        policy.httpBytes(bytes);
      },
    });
    if (options.seedOnly && !scheduler.isComplete()) {
      throw new PfError('PF_ERR_FILE_HASH_MISMATCH', `the local copy does not match the manifest (${have.count()} of ${have.length} chunks verify)`);
    }
    const peers = this.#peerStack ? this.#joinPeers(this.#peerStack, manifest, scheduler, policy, session) : undefined;
    const lanes = new HttpLanes({
      manifest,
      scheduler,
      policy,
      filler,
      options,
      isPeerGrace: () => peers?.tracker !== undefined && Date.now() - this.#startedAtMs < options.peerGraceMs,
      acceptChunk: (index, bytes, source) => this.#acceptChunk(index, bytes, source),
      reserve: (bytes) => this.#inFlight.reserve(bytes),
      unreserve: (bytes) => this.#inFlight.release(bytes),
      warn: (message, details) => this.#warn(message, details),
      fail: (error) => this.#fail(error),
    });
    const parts: Parts = { manifest, scheduler, policy, hashTracker, lanes, swarm: peers?.swarm, tracker: peers?.tracker };
    this.#parts = parts;
    this.#timers.push(setInterval(() => this.emit('progress', this.progress()), options.progressIntervalMs));
    this.#timers.push(setInterval(() => this.#onTick(), 1000));
    this.#timers.push(
      setInterval(() => void this.#patchSession({}).catch((error: unknown) => this.#warn('session update failed', { error: String(error) })), options.sessionUpdateIntervalMs),
    );
    peers?.tracker?.start();
    this.#setStatus('running');
    this.#startedAtMs = Date.now();
    if (scheduler.isComplete()) return this.#finish(parts);
    void hashTracker.advance().catch((error: unknown) => this.#fail(error));
    policy.restart();
    lanes.start();
  }

  #joinPeers(peerStack: PeerStack, manifest: Manifest, scheduler: Scheduler, policy: HybridPolicy, session: ResumeData): { swarm: Swarm; tracker: TrackerClient | undefined } {
    const { swarm, tracker } = peerStack.join({
      manifest,
      scheduler,
      trackerUrl: session.tracker_url,
      hooks: {
        acceptChunk: (index, bytes, source) => this.#acceptChunk(index, bytes, source),
        read: (index, offset, length) => this.#store.read(index, offset, length),
        reserve: (bytes) => this.#inFlight.reserve(bytes),
        unreserve: (bytes) => this.#inFlight.release(bytes),
        warn: (message, details) => this.#warn(message, details),
      },
      stats: () => this.#announceStats(),
    });
    swarm.on('peer', (event) => {
      if (!event.isConnected) policy.peerGone(peerSource(event.peerIdHex));
      this.emit('peer', event);
      this.#wake();
    });
    swarm.on('upload', ({ bytes }) => this.#counter.addUploaded(bytes));
    swarm.on('download', ({ bytes, source }) => policy.peerBytes(source, bytes));
    swarm.on('ban', (event) => this.emit('ban', event));
    return { swarm, tracker };
  }

  /** A simple-peer for this client's WebRTC settings (also used by tests to connect directly). */
  createPeer(isInitiator: boolean): SimplePeer.Instance {
    if (!this.#peerStack) throw new PfError('PF_ERR_INTERNAL', 'peers are off, or the download has no manifest yet');
    return this.#peerStack.createPeer(isInitiator);
  }

  /** Hand an already connected data channel to the swarm (tests; custom signalling). */
  addPeerChannel(channel: SimplePeer.Instance, isInitiator: boolean): boolean {
    return this.#parts?.swarm?.addChannel(channel, isInitiator) ?? false;
  }

  #announceStats() {
    const scheduler = this.#parts?.scheduler;
    const verified = this.#counter.verifiedBytes;
    return {
      uploadedBytes: this.#counter.uploadedBytes,
      downloadedBytes: verified,
      leftBytes: Math.max(0, (this.manifest?.size ?? 0) - verified),
      sessionId: this.#session.state?.session_id,
      sessionProof: this.#session.announceProof,
      haveBase64Url: scheduler?.have.toBase64Url(),
      bytesConfirmed: verified,
      bytesFromPeers: this.#counter.fromPeersBytes,
      bytesFromHttp: this.#counter.fromHttpBytes,
    };
  }

  // --- chunks -----------------------------------------------------------------

  /** The one door into the store: verify, store, tell everyone. False = bad bytes. */
  async #acceptChunk(index: number, bytes: Uint8Array, source: SourceId): Promise<boolean> {
    const parts = this.#parts;
    // Sources start only once the parts exist; a chunk without them has nowhere to go.
    if (!parts) return true;
    const { scheduler, manifest } = parts;
    if (scheduler.have.get(index)) {
      scheduler.release(index, source);
      return true;
    }
    const isGood = await verifyChunk(manifest, index, bytes, this.#options.hashChunk);
    if (!isGood) {
      scheduler.release(index, source);
      this.#warn('chunk failed SHA-256', { index, source });
      this.#wake();
      return false;
    }
    if (scheduler.have.get(index) || this.#storing.has(index) || this.#isDestroyed) {
      scheduler.release(index, source);
      return true;
    }
    this.#storing.add(index);
    try {
      await this.#store.put(index, bytes);
    } finally {
      this.#storing.delete(index);
    }
    const others = scheduler.complete(index, source);
    for (const other of others) if (isPeerSource(other)) parts.swarm?.cancelChunk(index, other);
    const peerIdHex = isPeerSource(source) ? peerIdOf(source) : undefined;
    this.#counter.addVerified(bytes.length, peerIdHex !== undefined);
    parts.policy.delivered(bytes.length);
    parts.swarm?.broadcastHave(index, peerIdHex === undefined);
    this.emit('chunk', peerIdHex !== undefined ? { index, source: 'peer', peerIdHex } : { index, source: 'http' });
    const { consumed, caughtUp } = parts.hashTracker.offer(index, bytes);
    void caughtUp.catch((error: unknown) => this.#fail(error));
    await consumed.catch(() => undefined);
    this.#wake();
    if (scheduler.isComplete()) {
      void this.#finish(parts).catch((error: unknown) => {
        this.#fail(error);
      });
    }
    return true;
  }

  /** Wake idle HTTP lanes: a chunk, a peer or freed memory changed what they may take. */
  #wake(): void {
    this.#parts?.lanes.wake();
  }

  #onTick(): void {
    const parts = this.#parts;
    if (!parts || this.#status !== 'running') return;
    const expired = parts.scheduler.expire();
    if (expired.length > 0) {
      parts.swarm?.expire(expired);
      this.#wake();
    }
    parts.swarm?.fillAll();
  }

  // --- the end ------------------------------------------------------------------

  async #finish(parts: Parts): Promise<void> {
    if (this.#isFinishing) return;
    this.#isFinishing = true;
    const check = await parts.hashTracker.check();
    if (!check.isMatch) throw this.#fail(new PfError('PF_ERR_FILE_HASH_MISMATCH', `assembled file SHA-256 ${check.sha256} is not the manifest's`));
    await this.#store.flush();
    await this.#store.finalize();
    await this.#store.saveResumeData(undefined).catch(() => undefined);
    parts.tracker?.announce('completed');
    await this.#patchSession({}).catch((error: unknown) => this.#warn('final session update failed', { error: String(error) }));
    const progress = this.progress();
    this.emit('progress', progress);
    this.#setStatus('done');
    this.emit('done', { sha256: check.sha256, progress });
    const seedMs = this.#options.seedAfterDoneMs;
    if (seedMs > 0 && parts.swarm) {
      this.#setStatus('seeding');
      if (Number.isFinite(seedMs)) this.#seedTimer = setTimeout(() => void this.destroy(), seedMs);
    } else {
      await this.destroy();
    }
  }

  async #patchSession(body: { status?: 'paused' | 'resumed' }): Promise<void> {
    const scheduler = this.#parts?.scheduler;
    if (!scheduler) return;
    await this.#session.report({
      ...body,
      bytes_confirmed: this.#counter.verifiedBytes,
      have: scheduler.have.toBase64Url(),
      bytes_from_peers: this.#counter.fromPeersBytes,
      bytes_from_http: this.#counter.fromHttpBytes,
    });
  }

  #setStatus(status: DownloadEvents['status']['status']): void {
    this.#status = status;
    this.emit('status', { status });
  }

  #warn(message: string, details?: Record<string, unknown>): void {
    this.#options.onWarning(message, details);
  }

  #fail(error: unknown): PfError {
    const pfError = isPfError(error) ? error : new PfError('PF_ERR_INTERNAL', String(error), { cause: error });
    if (this.#isDestroyed) return pfError;
    this.emit('error', pfError);
    void this.destroy();
    return pfError;
  }
}
