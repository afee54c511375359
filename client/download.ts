import type SimplePeer from 'simple-peer';
import { PfError, chunkCount, chunkLength, isPfError, type Bitfield, type Manifest } from '../protocol/index.ts';
import type { ChunkStore, ResumeData } from './chunk-store.ts';
import { DownloadSession, type DownloadTarget } from './download-session.ts';
import { TypedEmitter } from './events.ts';
import { FileHashTracker } from './file-hash-tracker.ts';
import { HttpFiller } from './http-filler.ts';
import { HttpLanes } from './http-lanes.ts';
import { HybridPolicy } from './hybrid-policy.ts';
import { InFlightWindow } from './in-flight-window.ts';
import { changedChunks } from './manifest-diff.ts';
import { Outage, retryWhileDown, type OutageWait } from './outage.ts';
import type { ResolvedOptions } from './options.ts';
import { PeerStack } from './peer/peer-stack.ts';
import type { Swarm, SwarmEvents } from './peer/swarm.ts';
import { ProgressCounter, type ProgressInfo } from './progress.ts';
import { Scheduler, isPeerSource, peerIdOf, peerSource, type SourceId } from './scheduler.ts';
import { SessionClient, fetchApiRequest } from './session-client.ts';
import type { TrackerClient } from './peer/tracker-client.ts';
import { verifyChunk } from './verify.ts';

/** HTTP duplicates a peer's chunk in endgame only after the peer has had it this long. */
const HTTP_ENDGAME_MIN_AGE_MS = 3000;
/** Whole-file mismatches healed (chunks re-verified, the bad ones fetched again) before the download fails. */
const MAX_HEALS = 2;
/** Least time between two manifest checks prompted by wrong bytes from the origin (a lying data plane must not flood the API). */
const VERSION_CHECK_INTERVAL_MS = 2000;

export interface DownloadEvents {
  progress: ProgressInfo;
  /** A chunk passed SHA-256 and is stored. */
  chunk: { index: number; source: 'peer' | 'http'; peerIdHex?: string };
  peer: SwarmEvents['peer'];
  /** A peer sent bad chunks too often and is banned for this download. */
  ban: { peerIdHex: string; reason: string };
  /**
   * The whole-file SHA-256 failed although every chunk had verified when stored: every chunk
   * was read back and checked, and these no longer match (changed on disk); they are fetched again.
   */
  healed: { chunks: number[] };
  /**
   * The file was republished since this download began: it goes on with the new version under
   * a new session, keeping every stored chunk that the new manifest has at the same offset.
   * At start (a resumed download) the store reports what it kept; mid-download (noticed from
   * the origin's wrong bytes or a session answer) `keptChunks` of `chunkCount` are kept.
   */
  changed: { name: string; previousInfoHash: string; infoHash: string; keptChunks?: number; chunkCount?: number };
  /**
   * Every chunk is verified and stored: the whole-file SHA-256 is being checked now (it reads
   * back what the running hash has not covered yet). `done` or `healed` follows.
   */
  verifying: { sizeBytes: number };
  /** Seed only, a partial copy: these chunks verify and are served; nothing is fetched. */
  seeding: { chunks: number; chunkCount: number };
  /** Every chunk verified and the whole-file SHA-256 matched the manifest. */
  done: { sha256: string; progress: ProgressInfo };
  /** The server or the network is away: the next try is in `delayMs` (see ClientOptions.retryForMs). */
  retry: OutageWait;
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
  /** The finish (whole-file check, publish) once begun: a pause waits for it rather than cut it in half. */
  #finishing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;
  #isDestroyed = false;
  #heals = 0;
  readonly #outage: Outage;
  /** Aborted by destroy(): ends waits for a server that is away. */
  readonly #lifetime = new AbortController();
  #started: Promise<void> | undefined;
  #seedTimer: ReturnType<typeof setTimeout> | undefined;
  #startedAtMs = Date.now();
  /** Chunk writes under way: a switch to a new version waits for them before it reopens the store. */
  readonly #puts = new Set<Promise<void>>();
  /** A check of the server's manifest under way (chunks from the origin failed: was the file republished?). */
  #versionCheck: Promise<void> | undefined;
  #lastVersionCheckMs = Number.NEGATIVE_INFINITY;
  /** A switch to the file's new version under way (see #switchVersion). */
  #switching: Promise<void> | undefined;

  constructor(target: DownloadTarget, store: ChunkStore, options: ResolvedOptions) {
    super();
    this.target = target;
    this.#store = store;
    this.#options = options;
    this.#inFlight = new InFlightWindow(options.maxInFlightBytes, () => this.#wake());
    this.#outage = new Outage({ retryForMs: options.retryForMs, random: options.random });
    this.#session = new DownloadSession({
      target,
      api: new SessionClient(target.serverUrl, options.apiRequest ?? fetchApiRequest(options.fetch)),
      store,
      clientId: options.clientId,
      warn: (message, details) => this.#warn(message, details),
      onVersionChanged: () => void this.#checkVersion(true),
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
    const swarm = parts?.swarm;
    const peers = {
      count: swarm?.peerCount ?? 0,
      connections: swarm?.connectionCounts() ?? { host: 0, srflx: 0, relay: 0 },
      relayProblem: this.#peerStack?.relayProblem,
      iceUrls: this.#peerStack?.iceUrls(),
    };
    return this.#counter.snapshot(this.manifest?.size ?? 0, peers, parts?.scheduler.have.count() ?? 0, parts?.scheduler.chunkCount ?? 0, parts?.policy.info());
  }

  /** Stop fetching, make local state durable and PATCH the session `paused`. Peers are still served. */
  async pause(): Promise<void> {
    // A finish in progress is not cut in half: it publishes (or heals, and then we pause).
    while (this.#finishing && this.#status === 'running') await this.#finishing.catch(() => undefined);
    // A switch to a new version is local work (the new session is open): it ends first.
    await this.#switching?.catch(() => undefined);
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
    if (this.#parts?.scheduler.isComplete()) void this.#finish(this.#parts).catch((error: unknown) => this.#fail(error));
    else this.#parts?.lanes.start();
  }

  /**
   * The connection may be back (the browser went `online`, or the user asked): end the
   * outage's backoff wait and try HTTP again now. A no-op unless it is running and fetching.
   */
  async retryNow(): Promise<void> {
    const parts = this.#parts;
    if (!parts || this.#status !== 'running' || this.#finishing || parts.scheduler.isComplete()) return;
    this.#outage.back();
    await parts.lanes.stop();
    if (this.#status === 'running' && !this.#isDestroyed) parts.lanes.start();
  }

  /**
   * The store no longer has these chunks (a seeded file changed on disk): they are no longer
   * offered. A `have` cannot be taken back, and a request for a chunk we announced is no
   * violation, so every peer that may ask for one is disconnected; it comes back through the
   * tracker and gets a bitfield without them. For a seeding download: nothing is fetched
   * again, from peers or HTTP. Returns the chunks that were offered until now.
   */
  withdrawChunks(indexes: readonly number[]): number[] {
    const parts = this.#parts;
    if (!parts) return [];
    const withdrawn = indexes.filter((index) => parts.scheduler.have.get(index));
    for (const index of withdrawn) {
      parts.scheduler.have.set(index, false);
      this.#counter.verifiedBytes -= chunkLength(parts.manifest, index);
    }
    if (withdrawn.length === 0) return withdrawn;
    // A complete copy was seeding with requests on: they would now ask peers for these chunks.
    parts.swarm?.pauseRequests();
    parts.swarm?.withdraw(withdrawn);
    return withdrawn;
  }

  /**
   * The store has these chunks (again): a seeded file was put back, or more of a partial copy
   * was written. They are offered to peers with a `have`. For a seeding download. Returns the
   * chunks that were not offered until now.
   */
  offerChunks(indexes: readonly number[]): number[] {
    const parts = this.#parts;
    if (!parts) return [];
    const offered = indexes.filter((index) => index >= 0 && index < parts.scheduler.chunkCount && !parts.scheduler.have.get(index));
    for (const index of offered) {
      parts.scheduler.have.set(index, true);
      this.#counter.verifiedBytes += chunkLength(parts.manifest, index);
      parts.swarm?.broadcastHave(index, true);
    }
    return offered;
  }

  /** Stop everything and close the store (without publishing an incomplete file). */
  destroy(): Promise<void> {
    this.#destroying ??= this.#destroy();
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    this.#isDestroyed = true;
    this.#lifetime.abort();
    // A switch to a new version ends (it sees #isDestroyed) before the store is closed under it.
    await this.#switching?.catch(() => undefined);
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
    const saved = await this.#store.loadResumeData();
    // A server that is away at start is waited for like one lost mid-download.
    const { session, manifest, changedFrom } = await retryWhileDown(
      async () => {
        const opened = await this.#session.open(saved);
        return { session: opened, ...(await this.#session.manifest()) };
      },
      this.#outage,
      (wait) => this.emit('retry', wait),
      this.#lifetime.signal,
    );
    if (changedFrom !== undefined) this.emit('changed', { name: manifest.name, previousInfoHash: changedFrom, infoHash: manifest.info_hash });
    if (this.#options.usePeers) this.#peerStack ??= await PeerStack.load(this.#options, () => this.#session.iceServers);
    this.manifest = manifest;
    if (this.#isDestroyed) return;

    const have = await this.#store.open(manifest, (index, bytes) => verifyChunk(manifest, index, bytes, this.#options.hashChunk));
    if (have.length !== chunkCount(manifest.size, manifest.chunk_size)) throw new PfError('PF_ERR_INTERNAL', 'the store returned a bitfield of the wrong length');
    this.#counter.resumedBytes = bytesOf(manifest, have);
    this.#counter.verifiedBytes = this.#counter.resumedBytes;
    return this.#build(manifest, session, have, false);
  }

  /** Everything a running download is made of, for `manifest` and the chunks the store has of it; then it runs. */
  #build(manifest: Manifest, session: ResumeData, have: Bitfield, isSwitch: boolean): Promise<void> | undefined {
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
      onHttpLoadingChange: () => this.#parts?.swarm?.announceLoading(),
      selfPeerIdHex: options.peerIdHex,
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
      onWrongBytes: () => void this.#checkVersion(false),
    });
    if (options.seedOnly && have.count() === 0) {
      throw new PfError('PF_ERR_FILE_HASH_MISMATCH', `the local copy does not match the manifest (0 of ${have.length} chunks verify)`);
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
      connectionLost: (error) => {
        const wait = this.#outage.lost(error);
        if (wait && !wait.isRepeat) this.emit('retry', wait);
        return wait?.delayMs;
      },
      connectionBack: () => this.#outage.back(),
      giveUp: (error) => this.#failFor(parts, this.#outage.giveUp(error)),
      warn: (message, details) => this.#warn(message, details),
      // Wrong bytes from the origin may be a new version of the file: that is checked first.
      fail: (error) => void this.#failUnlessRepublished(parts, error),
    });
    const parts: Parts = { manifest, scheduler, policy, hashTracker, lanes, swarm: peers?.swarm, tracker: peers?.tracker };
    this.#parts = parts;
    this.#timers.push(setInterval(() => this.emit('progress', this.progress()), options.progressIntervalMs));
    this.#timers.push(setInterval(() => this.#onTick(), 1000));
    this.#timers.push(
      setInterval(() => void this.#patchSession({}).catch((error: unknown) => this.#warn('session update failed', { error: String(error) })), options.sessionUpdateIntervalMs),
    );
    peers?.tracker?.start();
    if (!isSwitch) this.#setStatus('running');
    this.#startedAtMs = Date.now();
    // A pause during a switch: the new version's parts wait for resume().
    if (this.#status === 'paused') {
      void hashTracker.advance().catch((error: unknown) => this.#failFor(parts, error));
      return undefined;
    }
    if (scheduler.isComplete()) return this.#finish(parts);
    if (options.seedOnly) {
      // A partial copy seeds the chunks it has and fetches nothing.
      parts.swarm?.pauseRequests();
      this.#setStatus('seeding');
      this.emit('seeding', { chunks: have.count(), chunkCount: have.length });
      return;
    }
    void hashTracker.advance().catch((error: unknown) => this.#failFor(parts, error));
    policy.restart();
    lanes.start();
    return undefined;
  }

  /** An error of `parts`' work: fatal unless those parts were replaced meanwhile (a new version, whose store was reopened under them). */
  #failFor(parts: Parts, error: unknown): void {
    if (this.#parts === parts) this.#fail(error);
  }

  // --- a new version of the file mid-download -----------------------------------

  /**
   * Ask the server for the file's manifest; if it names another version than the one being
   * downloaded (republished), switch to it. `force` skips the rate limit (a session answer
   * already named another version). Failures to ask are warnings: the download goes on.
   */
  #checkVersion(force: boolean): Promise<void> {
    if (this.#versionCheck) return this.#versionCheck;
    if (!force && Date.now() - this.#lastVersionCheckMs < VERSION_CHECK_INTERVAL_MS) return Promise.resolve();
    this.#versionCheck = (async () => {
      const current = this.manifest;
      if (!current || this.#isDestroyed) return;
      const { manifest } = await this.#session.manifest();
      if (this.#isDestroyed || manifest.info_hash === current.info_hash) return;
      this.#switching = this.#switchVersion(current, manifest);
      await this.#switching;
    })()
      .catch((error: unknown) => {
        if (this.#switching) this.#fail(error);
        else this.#warn('manifest check failed', { error: String(error) });
      })
      .finally(() => {
        this.#versionCheck = undefined;
        this.#switching = undefined;
        this.#lastVersionCheckMs = Date.now();
      });
    return this.#versionCheck;
  }

  /** The HTTP side gave up on `parts`: unless the file turns out to have been republished (and the download switched), fail. */
  async #failUnlessRepublished(parts: Parts, error: unknown): Promise<void> {
    if (isPfError(error) && (error.code === 'PF_ERR_CHUNK_HASH_MISMATCH' || error.code === 'PF_ERR_HTTP_RANGE_MISMATCH')) await this.#checkVersion(true);
    await this.#versionCheck;
    this.#failFor(parts, error);
  }

  /**
   * The file was republished mid-download (the new session is open): stop fetching the old
   * version, keep every stored chunk whose SHA-256 and range are the same in the new manifest,
   * reopen the store for it, and go on with new parts (scheduler, lanes, swarm) as at start.
   */
  async #switchVersion(previous: Manifest, next: Manifest): Promise<void> {
    const parts = this.#parts;
    if (!parts || this.#isDestroyed) return;
    if (!this.#store.discard) throw new PfError('PF_ERR_MANIFEST_INVALID', `${previous.name} changed on the server since this download started; start it again to go on with the new version (this store cannot drop chunks)`);
    // Chunks of the old version that arrive from here on go nowhere.
    this.#parts = undefined;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    parts.tracker?.stop('stopped');
    parts.swarm?.destroy();
    await parts.lanes.stop();
    await Promise.all([...this.#puts].map((put) => put.catch(() => undefined)));
    // Durably forget what the new version does not have at the same offset; the store checks the rest again on open.
    await this.#store.discard(changedChunks(previous, next));
    await this.#store.close();
    if (this.#isDestroyed) return;
    this.manifest = next;
    const have = await this.#store.open(next, (index, bytes) => verifyChunk(next, index, bytes, this.#options.hashChunk));
    if (have.length !== chunkCount(next.size, next.chunk_size)) throw new PfError('PF_ERR_INTERNAL', 'the store returned a bitfield of the wrong length');
    this.#counter.verifiedBytes = bytesOf(next, have);
    this.emit('changed', { name: next.name, previousInfoHash: previous.info_hash, infoHash: next.info_hash, keptChunks: have.count(), chunkCount: have.length });
    const session = this.#session.state;
    if (!session || this.#isDestroyed) return;
    const building = this.#build(next, session, have, true);
    void building?.catch((error: unknown) => this.#fail(error));
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
      connections: this.#parts?.swarm?.connectionCounts(true),
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
    if (scheduler.have.get(index) || this.#storing.has(index) || this.#isDestroyed || this.#parts !== parts) {
      scheduler.release(index, source);
      return true;
    }
    this.#storing.add(index);
    const put = this.#store.put(index, bytes);
    this.#puts.add(put);
    try {
      await put;
    } catch (error) {
      // The disk, not the source: stop at once (no retry, nothing more fetched) and blame no one.
      scheduler.release(index, source);
      this.#fail(error);
      return true;
    } finally {
      this.#storing.delete(index);
      this.#puts.delete(put);
    }
    const others = scheduler.complete(index, source);
    for (const other of others) if (isPeerSource(other)) parts.swarm?.cancelChunk(index, other);
    const peerIdHex = isPeerSource(source) ? peerIdOf(source) : undefined;
    this.#counter.addVerified(bytes.length, peerIdHex !== undefined);
    parts.policy.delivered(bytes.length);
    parts.swarm?.broadcastHave(index, peerIdHex === undefined);
    this.emit('chunk', peerIdHex !== undefined ? { index, source: 'peer', peerIdHex } : { index, source: 'http' });
    const { consumed, caughtUp } = parts.hashTracker.offer(index, bytes);
    void caughtUp.catch((error: unknown) => this.#failFor(parts, error));
    await consumed.catch(() => undefined);
    this.#wake();
    if (scheduler.isComplete() && this.#status === 'running') {
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

  #finish(parts: Parts): Promise<void> {
    this.#finishing ??= this.#publish(parts);
    return this.#finishing;
  }

  async #publish(parts: Parts): Promise<void> {
    this.emit('verifying', { sizeBytes: parts.manifest.size });
    const check = await parts.hashTracker.check();
    if (!check.isMatch) {
      const bad = this.#heals < MAX_HEALS && this.#store.discard ? await this.#recheck(parts) : [];
      if (bad.length === 0) throw this.#fail(new PfError('PF_ERR_FILE_HASH_MISMATCH', `assembled file SHA-256 ${check.sha256} is not the manifest's`));
      return this.#heal(parts, bad);
    }
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

  /** Every stored chunk read back and checked against the manifest: the ones that fail. */
  async #recheck(parts: Parts): Promise<number[]> {
    const bad: number[] = [];
    for (let index = 0; index < parts.scheduler.chunkCount; index++) {
      const bytes = await this.#store.read(index, 0, chunkLength(parts.manifest, index));
      if (!bytes || !(await verifyChunk(parts.manifest, index, bytes, this.#options.hashChunk))) bad.push(index);
    }
    return bad;
  }

  /** Forget the chunks that failed, durably, and fetch them again with a fresh whole-file hash. */
  async #heal(parts: Parts, bad: number[]): Promise<void> {
    this.#heals++;
    await this.#store.discard!(bad);
    for (const index of bad) {
      parts.scheduler.have.set(index, false);
      this.#counter.verifiedBytes -= chunkLength(parts.manifest, index);
    }
    const hashTracker = new FileHashTracker(parts.manifest, parts.scheduler.have, this.#options.createFileHasher(this.#store), (index, offset, length) => this.#store.read(index, offset, length));
    this.#parts = { ...parts, hashTracker };
    this.#finishing = undefined;
    this.emit('healed', { chunks: bad });
    if (this.#status !== 'running' || this.#isDestroyed) return;
    void hashTracker.advance().catch((error: unknown) => this.#fail(error));
    parts.lanes.start();
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
    void this.destroy().catch((closeError: unknown) => this.#warn('closing after the error failed', { error: String(closeError) }));
    return pfError;
  }
}

function bytesOf(manifest: Manifest, have: Bitfield): number {
  let bytes = 0;
  for (let index = 0; index < have.length; index++) if (have.get(index)) bytes += chunkLength(manifest, index);
  return bytes;
}
