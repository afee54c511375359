import type { Bitfield } from '../protocol/index.ts';
import type { HybridPolicy } from './hybrid-policy.ts';
import { HttpShares } from './http-shares.ts';
import { PiecePicker } from './piece-picker.ts';

/** One HTTP lane of this download. */
export type HttpSource = `http:${number}`;
/** One peer, by its hex peer id. */
export type PeerSource = `peer:${string}`;
/** Who fetches a chunk: a tagged string (usable as a Map key), built and read only here. */
export type SourceId = HttpSource | PeerSource;

const PEER_TAG = 'peer:';
export const httpSource = (lane: number): HttpSource => `http:${lane}`;
export const peerSource = (peerIdHex: string): PeerSource => `${PEER_TAG}${peerIdHex}`;
export const isPeerSource = (source: SourceId): source is PeerSource => source.startsWith(PEER_TAG);
/** The hex peer id a peer source names. */
export const peerIdOf = (source: PeerSource): string => source.slice(PEER_TAG.length);

interface Assignment {
  source: SourceId;
  startedAtMs: number;
  deadlineAtMs: number;
  /** When a peer is expected to deliver it, from its measured rate and queue; undefined = no estimate. */
  expectedDoneAtMs: number | undefined;
}

interface PeerState {
  bitfield: Bitfield;
  isUnchokingUs: boolean;
  /** Chunks the peer said it is fetching from HTTP (pf_loading), and when it last said so. */
  loading: Set<number>;
  loadingAtMs: number;
}

/**
 * How long a peer's word that it is fetching chunks from HTTP holds without being said again
 * (it repeats it while it fetches): a peer that goes quiet or lies holds HTTP back no longer.
 */
export const LOADING_CLAIM_MS = 8000;

export interface SchedulerOptions {
  chunkCount: number;
  have: Bitfield;
  /** Deadline of a peer request for chunk `index`, from when it is assigned. */
  peerDeadlineMs: (index: number) => number;
  /** At most this many sources per chunk; more than one only in endgame. */
  maxSourcesPerChunk?: number;
  /** HTTP duplicates a chunk a peer is fetching only once that peer has had it this long [0]. */
  httpEndgameMinAgeMs?: number;
  nowMs?: () => number;
  random?: () => number;
  /**
   * No swarm to spread over (HTTP only): every HTTP lane takes the next run from one shared
   * cursor starting at chunk 0, so chunks complete about in file order and the whole-file
   * hash keeps up instead of reading most of the file back at the end [false].
   */
  httpInFileOrder?: boolean;
  /**
   * The hybrid policy (rates of each source and the decisions made from them). Without it,
   * the fixed rules hold: a peer gets any chunk it has, HTTP duplicates a peer's chunk only
   * after httpEndgameMinAgeMs.
   */
  policy?: HybridPolicy;
  /** Bytes of chunk `index` (the last is shorter) [1]. */
  chunkBytes?: (index: number) => number;
  /** The chunks HTTP is fetching changed (a run was assigned or let go): tell the peers. */
  onHttpLoadingChange?: () => void;
  /**
   * Our own hex peer id: where our HTTP run and a peer's pf_loading name the same chunk (both
   * picked it before hearing of the other), the lower id keeps it, on both sides alike.
   */
  selfPeerIdHex?: string;
}

/** What HTTP and the serving peers would each have to fetch (the policy weighs the two). */
export interface FreeWork {
  servableFreeBytes: number;
  otherFreeBytes: number;
  servingPeerBytesPerSecond: number;
}

/** The cursor all HTTP lanes share with `httpInFileOrder` (lanes are numbered from 0). */
const SHARED_CURSOR = -1;

/**
 * Decides which source fetches which chunk: each chunk from one source at a time
 * (more only in endgame), rarest-first from peers, HTTP on what peers cannot serve,
 * and re-assignment of requests that miss their deadline.
 */
export class Scheduler {
  readonly picker: PiecePicker;
  readonly have: Bitfield;
  readonly #assignments = new Map<number, Assignment[]>();
  readonly #peers = new Map<SourceId, PeerState>();
  /** Chunk -> peers that missed a deadline on it: not asked for it again. */
  readonly #excluded = new Map<number, Set<SourceId>>();
  readonly #cursors = new Map<number, number>();
  /** Chunk -> how many connected peers are fetching it from HTTP (their pf_loading claims). */
  readonly #claims = new Map<number, number>();
  /** Our share of the file's blocks among the peers we see (HTTP takes its own first). */
  readonly #shares: HttpShares | undefined;
  /** The shares' members change only with the peers: set again after addPeer/removePeer, not per run. */
  #isSharesStale = true;
  #sharesBlockChunks = 0;
  readonly #options: Required<Pick<SchedulerOptions, 'maxSourcesPerChunk' | 'nowMs'>> & SchedulerOptions;
  readonly #httpStartOffset: number;
  /** HTTP let go of chunks it was fetching since peers were last told. */
  #isHttpLoadingDirty = false;

  constructor(options: SchedulerOptions) {
    const random = options.random ?? Math.random;
    this.#options = { ...options, maxSourcesPerChunk: options.maxSourcesPerChunk ?? 2, nowMs: options.nowMs ?? (() => Date.now()) };
    this.have = options.have;
    this.picker = new PiecePicker(options.chunkCount, random);
    this.#httpStartOffset = options.httpInFileOrder ? 0 : Math.floor(random() * Math.max(1, options.chunkCount));
    this.#shares = options.selfPeerIdHex === undefined ? undefined : new HttpShares(options.selfPeerIdHex);
  }

  get chunkCount(): number {
    return this.picker.chunkCount;
  }

  /** Where this client's HTTP fill starts (random per client, so clients spread out). */
  get httpStartOffset(): number {
    return this.#httpStartOffset;
  }

  isComplete(): boolean {
    return this.have.isComplete();
  }

  sourcesOf(index: number): SourceId[] {
    return (this.#assignments.get(index) ?? []).map((a) => a.source);
  }

  pendingCount(): number {
    return this.#assignments.size;
  }

  // --- peers -------------------------------------------------------------

  addPeer(source: SourceId, bitfield: Bitfield): void {
    this.removePeer(source);
    this.#peers.set(source, { bitfield, isUnchokingUs: false, loading: new Set(), loadingAtMs: 0 });
    this.#isSharesStale = true;
    this.picker.addBitfield(bitfield, false);
  }

  /** Forget a peer; returns the chunks it was fetching (now free again). */
  removePeer(source: SourceId): number[] {
    const peer = this.#peers.get(source);
    if (!peer) return [];
    this.picker.removeBitfield(peer.bitfield, peer.isUnchokingUs);
    this.#dropClaims(peer);
    this.#peers.delete(source);
    this.#isSharesStale = true;
    return this.releaseAll(source);
  }

  peerHave(source: SourceId, index: number): void {
    const peer = this.#peers.get(source);
    if (!peer || index < 0 || index >= this.chunkCount || peer.bitfield.get(index)) return;
    peer.bitfield.set(index);
    this.picker.addHave(index, peer.isUnchokingUs);
    if (peer.loading.delete(index)) this.#unclaim(index);
  }

  /**
   * The peer is fetching these chunks from HTTP now (the whole set, replacing the last): HTTP
   * here leaves them to it, as it leaves chunks a peer has, until LOADING_CLAIM_MS pass
   * without the peer saying so again. Indices are checked by the caller's codec.
   */
  peerLoading(source: SourceId, indices: readonly number[]): void {
    const peer = this.#peers.get(source);
    if (!peer) return;
    this.#dropClaims(peer);
    peer.loadingAtMs = this.#options.nowMs();
    for (const index of indices) {
      if (index < 0 || index >= this.chunkCount || peer.bitfield.get(index) || peer.loading.has(index)) continue;
      peer.loading.add(index);
      this.#claims.set(index, (this.#claims.get(index) ?? 0) + 1);
    }
  }

  /** Whether a connected peer is fetching the chunk from HTTP (its claim still fresh). */
  isClaimedByPeer(index: number): boolean {
    return this.#claims.has(index);
  }

  /**
   * Whether our HTTP run should stop before `index` and leave it to a peer that also fetches it
   * from the origin: both picked it before either heard of the other, and the peer's id is the
   * lower one (each side decides the same way, so one copy comes from the origin, not two).
   */
  yieldsToPeerClaim(index: number): boolean {
    const self = this.#options.selfPeerIdHex;
    if (self === undefined || !this.#claims.has(index)) return false;
    this.#expireClaims();
    for (const [source, peer] of this.#peers) if (peer.loading.has(index) && isPeerSource(source) && peerIdOf(source) < self) return true;
    return false;
  }

  /** The runs of adjacent chunks our HTTP lanes are fetching now (what pf_loading tells peers). */
  httpLoadingRuns(): Array<{ start: number; count: number }> {
    const indices: number[] = [];
    for (const [index, list] of this.#assignments) if (list.some((a) => !isPeerSource(a.source))) indices.push(index);
    indices.sort((a, b) => a - b);
    const runs: Array<{ start: number; count: number }> = [];
    for (const index of indices) {
      const last = runs[runs.length - 1];
      if (last && last.start + last.count === index) last.count++;
      else runs.push({ start: index, count: 1 });
    }
    return runs;
  }

  /** The peer replaced its whole bitfield (a bitfield message after haves). */
  peerBitfield(source: SourceId, bitfield: Bitfield): void {
    const peer = this.#peers.get(source);
    if (!peer) return;
    this.picker.removeBitfield(peer.bitfield, peer.isUnchokingUs);
    peer.bitfield = bitfield;
    this.picker.addBitfield(bitfield, peer.isUnchokingUs);
  }

  peerUnchoking(source: SourceId, isUnchokingUs: boolean): void {
    const peer = this.#peers.get(source);
    if (!peer || peer.isUnchokingUs === isUnchokingUs) return;
    peer.isUnchokingUs = isUnchokingUs;
    this.picker.setServable(peer.bitfield, isUnchokingUs);
  }

  peerHas(source: SourceId, index: number): boolean {
    return this.#peers.get(source)?.bitfield.get(index) ?? false;
  }

  /** Whether the peer has any chunk that we still need. */
  isInterestedIn(source: SourceId): boolean {
    const peer = this.#peers.get(source);
    if (!peer) return false;
    for (let index = 0; index < this.chunkCount; index++) if (!this.have.get(index) && peer.bitfield.get(index)) return true;
    return false;
  }

  /**
   * Whether a connected peer has a chunk we still need, unchoking us or not: then we are in
   * a swarm, and HTTP should fill what peers lack rather than race them to everything.
   */
  peersHaveWantedChunks(): boolean {
    if (this.#peers.size === 0) return false;
    for (let index = 0; index < this.chunkCount; index++) if (!this.have.get(index) && this.picker.availability(index) > 0) return true;
    return false;
  }

  hasServingPeers(): boolean {
    for (const peer of this.#peers.values()) if (peer.isUnchokingUs) return true;
    return false;
  }

  /**
   * Assign up to `max` chunks to a peer: rarest first among free chunks it has; in
   * endgame (none free), chunks another single source is slow on.
   */
  nextForPeer(source: SourceId, max: number): number[] {
    const peer = this.#peers.get(source);
    if (!peer || !peer.isUnchokingUs || max <= 0) return [];
    const picked = this.picker.pickRarest(peer.bitfield, (index) => this.#isFree(index) && !this.#isExcluded(index, source), max);
    if (picked.length < max) picked.push(...this.#endgamePicks(source, max - picked.length, (index) => peer.bitfield.get(index)));
    for (const index of picked) this.#assign(index, source);
    return picked;
  }

  /** What each side would fetch now: free chunks a serving peer has, and the other free chunks. */
  freeWork(): FreeWork {
    let servableFreeBytes = 0;
    let otherFreeBytes = 0;
    for (let index = 0; index < this.chunkCount; index++) {
      if (!this.#isFree(index) || this.#claims.has(index)) continue;
      if (this.picker.servable(index) > 0 && !this.isExcludedFromAllPeers(index)) servableFreeBytes += this.#chunkBytes(index);
      else otherFreeBytes += this.#chunkBytes(index);
    }
    let servingPeerBytesPerSecond = 0;
    const policy = this.#options.policy;
    if (policy) for (const [source, peer] of this.#peers) if (peer.isUnchokingUs) servingPeerBytesPerSecond += policy.peerBytesPerSecond(source);
    return { servableFreeBytes, otherFreeBytes, servingPeerBytesPerSecond };
  }

  /**
   * Assign a run of adjacent chunks to HTTP lane `lane`. Chunks no connected peer has come
   * first. Unless `mayTakeServable`, chunks that an unchoking peer can serve are left to
   * peers, and so are chunks only a choking peer has while the serving peers still have
   * work for us (chokes rotate; the origin's bytes are the scarce ones). When nothing else
   * is left, a chunk stuck on one other source is duplicated (endgame).
   */
  nextHttpRun(lane: number, options: { laneCount: number; maxRunChunks: number; mayTakeServable: boolean }): { start: number; count: number } | undefined {
    const n = this.chunkCount;
    const inOrder = this.#options.httpInFileOrder === true;
    const cursorKey = inOrder ? SHARED_CURSOR : lane;
    this.#expireClaims();
    // A chunk another client is fetching from HTTP is as good as one a peer has: it will have it.
    const pick = (avoid: 'available' | 'servable' | 'none', isOurs: (index: number) => boolean = () => true) =>
      this.picker.pickHttpRun({
        isFree: avoid === 'none' ? (index) => this.#isFree(index) : (index) => this.#isFree(index) && !this.#claims.has(index) && isOurs(index),
        cursor: this.#cursors.get(cursorKey),
        startOffset: this.#httpStartOffset + (inOrder ? 0 : Math.floor((lane * n) / Math.max(1, options.laneCount))),
        maxRunChunks: options.maxRunChunks,
        avoidServable: avoid !== 'none',
        avoidAvailable: avoid === 'available',
        isForcedHttp: (index) => this.isExcludedFromAllPeers(index),
      });
    // Chunks no peer has are shared out (HttpShares): our own blocks first, and another's only
    // while its owner's HTTP is idle. An owner at work gets to it; taking it meanwhile raced the
    // owner's pf_loading (which takes a second to arrive) into a second copy from the origin.
    const shares = this.#peers.size > 0 ? this.#shares : undefined;
    if (shares && (this.#isSharesStale || options.maxRunChunks !== this.#sharesBlockChunks)) {
      shares.setMembers([...this.#peers.keys()].filter(isPeerSource).map(peerIdOf), options.maxRunChunks);
      this.#isSharesStale = false;
      this.#sharesBlockChunks = options.maxRunChunks;
    }
    const mayTake = (index: number) => !shares || this.picker.availability(index) > 0 || shares.owns(index) || this.#isHttpIdle(shares.ownerOf(index));
    let run = shares ? pick('available', (index) => shares.owns(index)) : undefined;
    if (!run && this.#peers.size > 0) run = pick('available', mayTake);
    if (!run && (options.mayTakeServable || !this.#servingPeersHaveWork())) {
      run = pick('servable', mayTake);
      if (run && this.#options.policy) for (let index = run.start; index < run.start + run.count; index++) if (this.picker.availability(index) > 0) this.#options.policy.decisions.chokedToHttp++;
    }
    if (!run && options.mayTakeServable) {
      run = pick('none');
      if (run && this.hasServingPeers() && this.#options.policy) this.#options.policy.decisions.servableToHttp++;
    }
    if (!run) {
      const [index] = this.#endgamePicks(httpSource(lane), 1, () => true, true, options.laneCount);
      if (index === undefined) return undefined;
      run = { start: index, count: 1 };
    }
    for (let index = run.start; index < run.start + run.count; index++) this.#assign(index, httpSource(lane));
    this.#cursors.set(cursorKey, run.start + run.count);
    this.#isHttpLoadingDirty = true;
    this.#flushHttpLoading();
    return run;
  }

  // --- completion ----------------------------------------------------------

  /** A verified chunk arrived from `source`; returns the other sources to cancel. */
  complete(index: number, source: SourceId): SourceId[] {
    if (index >= 0 && index < this.chunkCount) this.have.set(index);
    // A chunk we have leaves our loading set with the have that announces it; no message.
    if (this.#claims.has(index)) for (const peer of this.#peers.values()) if (peer.loading.delete(index)) this.#unclaim(index);
    const others = this.sourcesOf(index).filter((other) => other !== source);
    this.#assignments.delete(index);
    this.#excluded.delete(index);
    return others;
  }

  /** The source gave up on the chunk (failed, cancelled, bad data): free it again. */
  release(index: number, source: SourceId): void {
    const list = this.#assignments.get(index);
    if (!list) return;
    const rest = list.filter((a) => a.source !== source);
    if (rest.length === 0) this.#assignments.delete(index);
    else this.#assignments.set(index, rest);
    if (!isPeerSource(source) && rest.length < list.length) this.#isHttpLoadingDirty = true;
  }

  releaseAll(source: SourceId): number[] {
    const released: number[] = [];
    for (const [index, list] of this.#assignments) {
      if (!list.some((a) => a.source === source)) continue;
      this.release(index, source);
      released.push(index);
    }
    this.#flushHttpLoading();
    return released;
  }

  /**
   * Peer assignments past their deadline. Each is released and its peer is excluded
   * from that chunk, so the next pick goes to another peer or to HTTP.
   */
  expire(): Array<{ index: number; source: SourceId }> {
    const now = this.#options.nowMs();
    const expired: Array<{ index: number; source: SourceId }> = [];
    for (const [index, list] of this.#assignments) {
      for (const assignment of list) {
        if (!isPeerSource(assignment.source) || assignment.deadlineAtMs > now) continue;
        expired.push({ index, source: assignment.source });
      }
    }
    for (const { index, source } of expired) {
      this.release(index, source);
      let set = this.#excluded.get(index);
      if (!set) this.#excluded.set(index, (set = new Set()));
      set.add(source);
    }
    return expired;
  }

  /** Chunks that no source has yet, and that no one can serve but HTTP. */
  isExcludedFromAllPeers(index: number): boolean {
    const excluded = this.#excluded.get(index);
    if (!excluded) return false;
    for (const [source, peer] of this.#peers) if (peer.bitfield.get(index) && !excluded.has(source)) return false;
    return true;
  }

  // --- internals -----------------------------------------------------------

  /** One pf_loading per change (a release of a whole run is one change, not one per chunk). */
  #flushHttpLoading(): void {
    if (!this.#isHttpLoadingDirty) return;
    this.#isHttpLoadingDirty = false;
    this.#options.onHttpLoadingChange?.();
  }

  #unclaim(index: number): void {
    const count = (this.#claims.get(index) ?? 1) - 1;
    if (count <= 0) this.#claims.delete(index);
    else this.#claims.set(index, count);
  }

  #dropClaims(peer: PeerState): void {
    for (const index of peer.loading) this.#unclaim(index);
    peer.loading.clear();
  }

  /** Whether a peer (by hex id) claims nothing from HTTP now (gone, idle, silent, or no pf_loading). */
  #isHttpIdle(peerIdHex: string | undefined): boolean {
    if (peerIdHex === undefined) return true;
    const peer = this.#peers.get(peerSource(peerIdHex));
    return !peer || peer.loading.size === 0;
  }

  #expireClaims(): void {
    if (this.#claims.size === 0) return;
    const oldest = this.#options.nowMs() - LOADING_CLAIM_MS;
    for (const peer of this.#peers.values()) if (peer.loading.size > 0 && peer.loadingAtMs < oldest) this.#dropClaims(peer);
  }

  /** Whether some peer that is unchoking us has a free chunk we need. */
  #servingPeersHaveWork(): boolean {
    for (const peer of this.#peers.values()) {
      if (!peer.isUnchokingUs) continue;
      for (let index = 0; index < this.chunkCount; index++) if (peer.bitfield.get(index) && this.#isFree(index)) return true;
    }
    return false;
  }

  #isFree(index: number): boolean {
    return !this.have.get(index) && !this.#assignments.has(index);
  }

  #isExcluded(index: number, source: SourceId): boolean {
    return this.#excluded.get(index)?.has(source) ?? false;
  }

  #assign(index: number, source: SourceId): void {
    const now = this.#options.nowMs();
    const list = this.#assignments.get(index) ?? [];
    list.push({ source, startedAtMs: now, deadlineAtMs: now + this.#options.peerDeadlineMs(index), expectedDoneAtMs: this.#expectedDoneAtMs(index, source, now) });
    this.#assignments.set(index, list);
  }

  /** A peer's chunk is done once the peer has sent its queue ahead and this chunk, at its rate. */
  #expectedDoneAtMs(index: number, source: SourceId, now: number): number | undefined {
    const rate = isPeerSource(source) ? (this.#options.policy?.peerBytesPerSecond(source) ?? 0) : 0;
    if (rate <= 0) return undefined;
    let queueBytes = this.#chunkBytes(index);
    for (const [other, list] of this.#assignments) if (other !== index && list.some((a) => a.source === source)) queueBytes += this.#chunkBytes(other);
    return now + (queueBytes * 1000) / rate;
  }

  #chunkBytes(index: number): number {
    return this.#options.chunkBytes?.(index) ?? 1;
  }

  /**
   * Whether HTTP should fetch a chunk beside its peer now: the peer's expected delivery is
   * later than one HTTP lane would need for it. Without estimates, once the peer has had
   * the chunk for httpEndgameMinAgeMs (a chunk merely in flight is not stuck).
   */
  #isLateForHttp(index: number, list: readonly Assignment[], laneCount: number, now: number, isWellAhead: boolean): boolean {
    const policy = this.#options.policy;
    const httpLaneRate = policy?.httpLaneBytesPerSecond(laneCount) ?? 0;
    // The soonest any holder is expected to deliver; undefined when one of them has no estimate.
    const expectedDoneAtMs = list.reduce<number | undefined>((soonest, a) => (soonest === undefined || a.expectedDoneAtMs === undefined ? undefined : Math.min(soonest, a.expectedDoneAtMs)), Infinity);
    if (policy && httpLaneRate > 0 && expectedDoneAtMs !== undefined) {
      const httpMs = (this.#chunkBytes(index) * 1000) / httpLaneRate;
      const leftMs = expectedDoneAtMs - now;
      // Half again HTTP's own time, so a peer about to finish keeps its chunk. A peer past its
      // expected finish by that much (or by a second) has stalled: the estimate no longer holds.
      // Far ahead of HTTP alone, only a stalled peer's chunk is worth the origin's bytes again.
      return (!isWellAhead && leftMs > httpMs * 1.5) || -leftMs > Math.max(1000, httpMs * 1.5);
    }
    const startedAtMs = Math.min(...list.map((a) => a.startedAtMs));
    return startedAtMs <= now - (this.#options.httpEndgameMinAgeMs ?? 0);
  }

  /** Endgame: pending chunks held by fewer than the max sources, oldest first. */
  #endgamePicks(source: SourceId, max: number, sourceHas: (index: number) => boolean, isHttp = false, laneCount = 1): number[] {
    if (max <= 0) return [];
    // One pass: any free chunk this source could take ends the endgame; HTTP also counts what is left.
    let leftBytes = 0;
    for (let index = 0; index < this.chunkCount; index++) {
      if (this.#isFree(index) && (isHttp || sourceHas(index))) return [];
      if (isHttp && !this.have.get(index)) leftBytes += this.#chunkBytes(index);
    }
    const candidates: Array<{ index: number; startedAtMs: number }> = [];
    const now = this.#options.nowMs();
    const isWellAhead = isHttp && (this.#options.policy?.isWellAheadOfHttpAlone(leftBytes) ?? false);
    for (const [index, list] of this.#assignments) {
      if (list.length >= this.#options.maxSourcesPerChunk || list.some((a) => a.source === source)) continue;
      if (!sourceHas(index) || this.#isExcluded(index, source)) continue;
      // HTTP lanes duplicate only peer work; two lanes on one chunk gain nothing.
      if (isHttp && list.every((a) => !isPeerSource(a.source))) continue;
      const startedAtMs = Math.min(...list.map((a) => a.startedAtMs));
      // HTTP bytes are the scarce ones: only a peer chunk that HTTP would deliver sooner.
      if (isHttp && !this.#isLateForHttp(index, list, laneCount, now, isWellAhead)) continue;
      candidates.push({ index, startedAtMs });
    }
    candidates.sort((a, b) => a.startedAtMs - b.startedAtMs);
    const picked = candidates.slice(0, max).map((c) => c.index);
    if (isHttp && this.#options.policy) this.#options.policy.decisions.lateToHttp += picked.length;
    return picked;
  }
}
