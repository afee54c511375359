import { RateMeter } from './rate-meter.ts';
import type { FreeWork, SourceId } from './scheduler.ts';

/** Why the policy moved work from peers to HTTP, or held HTTP back: counted for `--json` and the page. */
export interface PolicyDecisions {
  /** HTTP runs that took chunks a serving peer has, because the peers would have finished later. */
  servableToHttp: number;
  /** Chunks HTTP fetched beside a peer that was going to deliver them later than HTTP would. */
  lateToHttp: number;
  /** Times an HTTP lane waited because the peers alone held the speed floor. */
  floorHeld: number;
  /** Chunks HTTP took that a connected peer has but was choking us on, when no serving peer had work left. */
  chokedToHttp: number;
  /** HTTP runs that stopped before a chunk another client's HTTP fetched too (pf_loading; its id the lower). */
  yieldedToPeerHttp: number;
}

export interface PolicyInfo {
  mode: 'never-slower' | 'speed-floor';
  /** The publisher's (or the caller's) floor, bits per second; 0 when none. */
  speedFloorBitsPerSecond: number;
  httpBytesPerSecond: number;
  peerBytesPerSecond: number;
  decisions: PolicyDecisions;
}

export interface HybridPolicyOptions {
  /** Hold at least this rate and take everything else from peers; 0 = never slower than HTTP [0]. */
  speedFloorBitsPerSecond?: number;
  nowMs?: () => number;
  /** How far ahead of the floor a download may bank, so a burst from peers cannot excuse a long stall [3 s]. */
  floorCreditMs?: number;
  /** HTTP keeps what is delivered and in flight this far ahead of the floor: a request takes a round trip and its transfer to land [1 s]. */
  floorLeadMs?: number;
}

/** A rate measured over the time a source was busy, not wall time: idle lanes do not drag it down. */
class BusyRate {
  readonly #nowMs: () => number;
  readonly #decayBytes: number;
  #busy = 0;
  #busySinceMs = 0;
  #bytes = 0;
  #busyMs = 0;

  /** `decayBytes`: past this many bytes the old half weighs half (Infinity: the whole run). */
  constructor(nowMs: () => number, decayBytes = 16 * 1024 * 1024) {
    this.#nowMs = nowMs;
    this.#decayBytes = decayBytes;
  }

  get isBusy(): boolean {
    return this.#busy > 0;
  }

  begin(): void {
    if (this.#busy++ === 0) this.#busySinceMs = this.#nowMs();
  }

  end(): void {
    if (this.#busy === 0) return;
    if (--this.#busy === 0) this.#busyMs += this.#nowMs() - this.#busySinceMs;
  }

  add(bytes: number): void {
    this.#bytes += bytes;
    // Decay, so the figure follows the line as it changes (about the last 8 MiB weigh most).
    if (this.#bytes > this.#decayBytes) {
      this.#bytes /= 2;
      this.#busyMs /= 2;
      if (this.#busy > 0) {
        const now = this.#nowMs();
        this.#busyMs += (now - this.#busySinceMs) / 2;
        this.#busySinceMs = now;
      }
    }
  }

  bytesPerSecond(): number {
    const busyMs = this.#busyMs + (this.#busy > 0 ? this.#nowMs() - this.#busySinceMs : 0);
    // Under 200 ms of data says little (one TCP slow start): no estimate yet.
    if (busyMs < 200 || this.#bytes === 0) return 0;
    return (this.#bytes * 1000) / busyMs;
  }
}

/**
 * The hybrid policy: what each source delivers, and from that which source a chunk should go
 * to. Pure: the clock is injected; the scheduler and the HTTP lanes ask, and report bytes.
 *
 * Never slower than HTTP (the default): HTTP runs at full speed on chunks no peer serves,
 * and also takes chunks peers serve whenever the peers, at their measured rates, would finish
 * their share after HTTP finishes its own. A peer's chunk that HTTP would deliver sooner is
 * fetched beside it (the scheduler's endgame). With a speed floor: peers take all they can
 * and HTTP fetches only while the download runs below the floor.
 */
/** The peers' part of a download must end within this fraction of HTTP alone's time, or HTTP takes some of it. */
export const NEVER_SLOWER_MARGIN = 0.8;

export class HybridPolicy {
  readonly decisions: PolicyDecisions = { servableToHttp: 0, lateToHttp: 0, floorHeld: 0, chokedToHttp: 0, yieldedToPeerHttp: 0 };
  readonly #nowMs: () => number;
  readonly #floorBytesPerSecond: number;
  readonly #floorCreditMs: number;
  readonly #floorLeadMs: number;
  readonly #http: BusyRate;
  /** HTTP's rate over this whole run: what HTTP alone would have given it (the line changes). */
  #httpRun: BusyRate;
  readonly #peers = new Map<SourceId, RateMeter>();
  #floorBaseBytes = 0;
  #floorBaseAtMs: number | undefined;
  #deliveredBytes = 0;

  constructor(options: HybridPolicyOptions = {}) {
    this.#nowMs = options.nowMs ?? (() => Date.now());
    this.#floorBytesPerSecond = Math.max(0, (options.speedFloorBitsPerSecond ?? 0) / 8);
    this.#floorCreditMs = options.floorCreditMs ?? 3000;
    this.#floorLeadMs = options.floorLeadMs ?? 1000;
    this.#http = new BusyRate(this.#nowMs);
    this.#httpRun = new BusyRate(this.#nowMs, Number.POSITIVE_INFINITY);
  }

  get hasFloor(): boolean {
    return this.#floorBytesPerSecond > 0;
  }

  // --- what the sources report ---------------------------------------------------

  httpLaneBegin(): void {
    this.#http.begin();
    this.#httpRun.begin();
  }

  httpLaneEnd(): void {
    this.#http.end();
    this.#httpRun.end();
  }

  /** Raw bytes from the origin (before verification). */
  httpBytes(bytes: number): void {
    this.#http.add(bytes);
    this.#httpRun.add(bytes);
  }

  /** Block bytes from a peer (before verification). */
  peerBytes(source: SourceId, bytes: number): void {
    let meter = this.#peers.get(source);
    if (!meter) this.#peers.set(source, (meter = new RateMeter(5000, this.#nowMs)));
    meter.add(bytes);
  }

  peerGone(source: SourceId): void {
    this.#peers.delete(source);
  }

  /** Verified bytes of this run, any source: what the floor is held against. */
  delivered(bytes: number): void {
    this.#floorBaseAtMs ??= this.#nowMs();
    this.#deliveredBytes += bytes;
  }

  /** The download starts (or resumes) now: the floor counts from here. */
  restart(): void {
    this.#floorBaseAtMs = this.#nowMs();
    this.#floorBaseBytes = this.#deliveredBytes;
    const lanesBusy = this.#http.isBusy;
    this.#httpRun = new BusyRate(this.#nowMs, Number.POSITIVE_INFINITY);
    if (lanesBusy) this.#httpRun.begin();
  }

  // --- estimates -----------------------------------------------------------------

  /** All HTTP lanes together, while busy. 0 = no estimate yet. */
  httpBytesPerSecond(): number {
    return this.#http.bytesPerSecond();
  }

  /** One lane's share of the HTTP rate (what one more chunk over HTTP would get). */
  httpLaneBytesPerSecond(laneCount: number): number {
    return this.httpBytesPerSecond() / Math.max(1, laneCount);
  }

  /** A peer's rate to us over the last few seconds. 0 = no estimate yet. */
  peerBytesPerSecond(source: SourceId): number {
    return this.#peers.get(source)?.bytesPerSecond() ?? 0;
  }

  totalPeerBytesPerSecond(): number {
    let total = 0;
    for (const meter of this.#peers.values()) total += meter.bytesPerSecond();
    return total;
  }

  // --- decisions -------------------------------------------------------------------

  /**
   * Never-slower mode: how many bytes of the chunks that serving peers could give HTTP should
   * take as well. Peers' share takes `servable / peerRate`, HTTP's `other / httpRate`. HTTP
   * takes the `x` that keeps the download within NEVER_SLOWER_MARGIN of HTTP alone,
   * `(servable - x) / peerRate <= margin * (servable + other) / httpRate`, and never more than
   * the `x` at which both sides end together, `(servable - x) / peerRate = (other + x) / httpRate`.
   * 0 while the peers are ahead, or while
   * no peer rate is known yet (a peer gets a second to show its speed; a stampede on the
   * origin at every start costs more than that second). With a floor, the floor decides.
   */
  httpShareOfServable(work: FreeWork): number {
    if (this.hasFloor) return work.servableFreeBytes;
    if (work.servableFreeBytes <= 0 || work.servingPeerBytesPerSecond <= 0) return 0;
    // Far ahead of HTTP alone over the whole run: the promise holds without the origin's bytes
    // (in an origin-bound crowd the origin idles at the end, and its rate now says little).
    if (this.isWellAheadOfHttpAlone(work.servableFreeBytes + work.otherFreeBytes)) return 0;
    const httpRate = this.httpBytesPerSecond();
    // HTTP with no estimate yet and nothing else to do: it takes a first share to measure.
    if (httpRate <= 0) return work.otherFreeBytes > 0 ? 0 : work.servableFreeBytes / 2;
    const { servableFreeBytes: servable, otherFreeBytes: other, servingPeerBytesPerSecond: peerRate } = work;
    const balance = (servable * httpRate - other * peerRate) / (httpRate + peerRate);
    // Only what keeps the promise: the peers' part must end within NEVER_SLOWER_MARGIN of the
    // time HTTP alone would take for all that is left. Beyond that, origin bytes spent on
    // chunks peers have buy little time for us and take the origin from the crowd (bench/lab L3:
    // with an origin shared by 8 homes, balancing every client sent the origin 1.78x the file).
    const needed = servable - (peerRate * NEVER_SLOWER_MARGIN * (servable + other)) / httpRate;
    return Math.max(0, Math.min(servable, balance, needed));
  }

  /**
   * Never-slower mode, at the end: whether the download is so far ahead of HTTP alone that a
   * peer's chunk that is late (but still moving) need not be fetched again from the origin.
   * True when this run's time so far, plus `leftBytes` at the peers' rate, stays within
   * NEVER_SLOWER_MARGIN of what HTTP alone would take for the whole run at HTTP's rate over
   * the run (not its rate now: an origin that a crowd shared idles at the end). In an
   * origin-bound crowd a client is far ahead; its endgame copies were a third of the origin's
   * extra bytes (bench/lab L3). A fast CDN beside slow peers is not ahead: HTTP still helps.
   */
  isWellAheadOfHttpAlone(leftBytes: number): boolean {
    if (this.hasFloor) return false;
    const httpRate = this.#httpRun.bytesPerSecond();
    const peerRate = this.totalPeerBytesPerSecond();
    if (httpRate <= 0 || peerRate <= 0 || this.#floorBaseAtMs === undefined) return false;
    const elapsedMs = this.#nowMs() - this.#floorBaseAtMs;
    const runBytes = this.#deliveredBytes - this.#floorBaseBytes + leftBytes;
    return elapsedMs + (leftBytes / peerRate) * 1000 <= (NEVER_SLOWER_MARGIN * runBytes * 1000) / httpRate;
  }

  /**
   * Speed-floor mode: whether an HTTP lane may start a run now (always true without a floor,
   * or when no peer could give us anything: then waiting saves no CDN bytes).
   */
  mayHttpStart(httpInFlightBytes: number, havePeersWork: boolean): boolean {
    if (!this.hasFloor || !havePeersWork) return true;
    const now = this.#nowMs();
    this.#floorBaseAtMs ??= now;
    const got = this.#deliveredBytes + httpInFlightBytes;
    let target = this.#floorBaseBytes + (this.#floorBytesPerSecond * (now - this.#floorBaseAtMs + this.#floorLeadMs)) / 1000;
    const creditBytes = (this.#floorBytesPerSecond * this.#floorCreditMs) / 1000;
    if (got - target > creditBytes) {
      // Far ahead: bank no more than the credit (rebase the line under what we have).
      this.#floorBaseBytes = got - creditBytes - (this.#floorBytesPerSecond * this.#floorLeadMs) / 1000;
      this.#floorBaseAtMs = now;
      target = got - creditBytes;
    }
    if (got >= target) {
      this.decisions.floorHeld++;
      return false;
    }
    return true;
  }

  info(): PolicyInfo {
    return {
      mode: this.hasFloor ? 'speed-floor' : 'never-slower',
      speedFloorBitsPerSecond: this.#floorBytesPerSecond * 8,
      httpBytesPerSecond: this.#http.isBusy ? this.httpBytesPerSecond() : 0,
      peerBytesPerSecond: this.totalPeerBytesPerSecond(),
      decisions: { ...this.decisions },
    };
  }
}
