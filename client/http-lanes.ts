import { chunkRange, type Manifest } from '../protocol/index.ts';
import { isFileRemoved, type HttpFiller } from './http-filler.ts';
import type { HybridPolicy } from './hybrid-policy.ts';
import type { ResolvedOptions } from './options.ts';
import { isConnectionLoss } from './outage.ts';
import { httpSource, type Scheduler, type SourceId } from './scheduler.ts';
import { sleep } from './sleep.ts';

export interface HttpLanesOptions {
  manifest: Manifest;
  scheduler: Scheduler;
  policy: HybridPolicy;
  filler: HttpFiller;
  options: Pick<ResolvedOptions, 'httpConcurrency' | 'httpConcurrencyWithPeers' | 'httpMaxRunBytes' | 'httpMaxRunBytesWithPeers'>;
  /** Peers may still connect (a tracker runs and the start is recent): fill cautiously. */
  isPeerGrace: () => boolean;
  /** Verify, store and announce one chunk; false = bad bytes. */
  acceptChunk: (index: number, bytes: Uint8Array, source: SourceId) => Promise<boolean>;
  /** In-flight memory shared with the peers: one chunk per lane while it fetches. */
  reserve: (bytes: number) => boolean;
  unreserve: (bytes: number) => void;
  /** The server or the network is away: ms to wait before the next try, or undefined once the outage lasted too long. */
  connectionLost: (error: unknown) => number | undefined;
  /** Bytes got through: an outage is over. */
  connectionBack: () => void;
  /** The outage lasted too long, with no peer to fall back on: the download ends. */
  giveUp: (error: unknown) => void;
  warn: (message: string, details?: Record<string, unknown>) => void;
  /** Persistent HTTP failure with no peer to fall back on ends the download. */
  fail: (error: unknown) => void;
}

/**
 * The HTTP side of a download: a few lanes, each taking runs of adjacent chunks from the
 * scheduler and fetching them through the filler. With no peers they go at full speed; with
 * peers (or while peers may still connect) they use fewer lanes and shorter runs, and leave
 * chunks that peers can serve to them. Idle lanes sleep until woken or for a second.
 */
export class HttpLanes {
  readonly #options: HttpLanesOptions;
  #controller = new AbortController();
  #wakeResolvers: Array<() => void> = [];
  #wakeTimer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  /** Bytes of runs in flight not yet landed (the floor counts them as good as delivered). */
  #inFlightBytes = 0;
  #running: Array<Promise<void>> = [];

  constructor(options: HttpLanesOptions) {
    this.#options = options;
  }

  start(): void {
    this.#controller = new AbortController();
    const signal = this.#controller.signal;
    this.#running = Array.from({ length: this.#options.options.httpConcurrency }, (_, lane) => this.#runLane(lane, signal));
  }

  /**
   * Abort every request in flight; resolves once every lane has ended, including a chunk
   * that was being verified and stored when the abort came (start() begins again).
   */
  stop(): Promise<void> {
    this.#controller.abort();
    this.wake();
    return Promise.all(this.#running).then(() => undefined);
  }

  /** Wake idle lanes on the next macrotask (never synchronously: no wake-up ping-pong). */
  wake(): void {
    if (this.#wakeTimer !== undefined) return;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = undefined;
      const resolvers = this.#wakeResolvers;
      this.#wakeResolvers = [];
      for (const resolve of resolvers) resolve();
    }, 0);
  }

  async #runLane(lane: number, signal: AbortSignal): Promise<void> {
    const { scheduler, manifest, filler, policy } = this.#options;
    while (!signal.aborted && !scheduler.isComplete()) {
      const plan = this.#plan();
      if (plan === 'wait') {
        // The floor holds without us: look again soon, the line moves with the clock.
        await this.#idle(100);
        continue;
      }
      if (lane >= plan.laneCount || !this.#options.reserve(manifest.chunk_size)) {
        await this.#idle(plan.isSwarm ? 250 : 1000);
        continue;
      }
      // Runs no longer than an even share of what is left, so every lane has work.
      const left = scheduler.chunkCount - scheduler.have.count();
      const maxRunChunks = Math.max(1, Math.min(Math.floor(plan.maxRunBytes / manifest.chunk_size), Math.ceil(left / plan.laneCount)));
      const run = scheduler.nextHttpRun(lane, { laneCount: plan.laneCount, maxRunChunks, mayTakeServable: plan.mayTakeServable });
      if (!run) {
        this.#options.unreserve(manifest.chunk_size);
        await this.#idle(plan.isSwarm ? 250 : 1000);
        continue;
      }
      const source = httpSource(lane);
      const runBytes = this.#runBytes(run.start, run.count);
      let landedBytes = 0;
      this.#inFlightBytes += runBytes;
      policy.httpLaneBegin();
      try {
        const handOverAfter = Math.max(1, Math.floor(this.#options.options.httpMaxRunBytesWithPeers / manifest.chunk_size));
        let delivered = 0;
        await filler.fetchRun(
          run.start,
          run.count,
          async (index, bytes) => {
            landedBytes += bytes.length;
            this.#inFlightBytes -= bytes.length;
            this.#options.connectionBack();
            const isGood = await this.#options.acceptChunk(index, bytes, source);
            if (!isGood) return false;
            const next = index + 1;
            const isLast = next >= run.start + run.count;
            // Another client's HTTP fetches the run's next chunk too, and keeps it: the origin's
            // bytes are the crowd's scarcest; this lane picks a chunk no one fetches instead.
            if (!isLast && scheduler.yieldsToPeerClaim(next)) {
              policy.decisions.yieldedToPeerHttp++;
              return 'stop';
            }
            // Taking peers' chunks on purpose (they are behind): no reason to stop early.
            if (plan.mayTakeServable) return true;
            // Peers appeared mid-run: hand the rest of a long run over to them.
            if (++delivered >= handOverAfter && scheduler.hasServingPeers()) return 'stop';
            // The run's next chunk reached a peer that serves us since the run started: stop
            // here rather than take it from the origin too; the lane picks chunks no peer has.
            if (!isLast && scheduler.picker.servable(next) > 0) return 'stop';
            return true;
          },
          signal,
        );
        this.#failures = 0;
      } catch (error) {
        scheduler.releaseAll(source);
        if (signal.aborted) break;
        if (isFileRemoved(error)) {
          this.#options.fail(error);
          break;
        }
        if (isConnectionLoss(error)) {
          // One outage for every lane: the same wait, and the download ends only once it has
          // lasted --retry-for (with peers serving, they go on meanwhile).
          const delayMs = this.#options.connectionLost(error);
          if (delayMs === undefined && !scheduler.hasServingPeers()) {
            this.#options.giveUp(error);
            break;
          }
          await sleep(delayMs ?? 1000, signal).catch(() => undefined);
          continue;
        }
        this.#failures++;
        this.#options.warn('HTTP run failed', { lane, start: run.start, count: run.count, error: String(error) });
        // With no peer to fall back on, persistent HTTP failure is fatal.
        if (this.#failures >= this.#options.options.httpConcurrency * 2 && !scheduler.hasServingPeers()) {
          this.#options.fail(error);
          break;
        }
        await sleep(1000, signal).catch(() => undefined);
      } finally {
        policy.httpLaneEnd();
        this.#inFlightBytes -= runBytes - landedBytes;
        scheduler.releaseAll(source);
        this.#options.unreserve(manifest.chunk_size);
      }
    }
  }

  /**
   * How HTTP fills right now. With no peer in play: every lane, long runs, any chunk. In a
   * swarm the policy decides: never slower than HTTP (all lanes and peers' chunks too while
   * peers are behind; else a few lanes on chunks no peer serves), or, with a speed floor,
   * HTTP only while the download runs below it.
   */
  #plan(): 'wait' | { laneCount: number; maxRunBytes: number; mayTakeServable: boolean; isSwarm: boolean } {
    const { scheduler, policy, options } = this.#options;
    // Peers that have what we need but choke us still count: a client that went full speed on
    // HTTP while its swarm choked it fetched nearly the whole file from the origin (bench/swarm).
    const isSwarm = scheduler.hasServingPeers() || scheduler.peersHaveWantedChunks() || this.#options.isPeerGrace();
    const full = { laneCount: options.httpConcurrency, maxRunBytes: options.httpMaxRunBytes, mayTakeServable: true, isSwarm };
    if (!isSwarm) return full;
    // Only the start-up grace (no peer has anything yet): every lane, in short runs, so that
    // chunks a peer soon offers are not locked in long runs, and HTTP keeps its pace meanwhile.
    if (!policy.hasFloor && !scheduler.hasServingPeers() && !scheduler.peersHaveWantedChunks()) return { ...full, maxRunBytes: options.httpMaxRunBytesWithPeers };
    if (policy.hasFloor) return policy.mayHttpStart(this.#inFlightBytes, true) ? { ...full, maxRunBytes: options.httpMaxRunBytesWithPeers } : 'wait';
    const shareBytes = policy.httpShareOfServable(scheduler.freeWork());
    // Peers are behind: every lane, each run its part of HTTP's share of the peers' chunks.
    if (shareBytes >= this.#options.manifest.chunk_size / 2) {
      return { ...full, maxRunBytes: Math.max(options.httpMaxRunBytesWithPeers, Math.min(options.httpMaxRunBytes, shareBytes / options.httpConcurrency)) };
    }
    return { laneCount: options.httpConcurrencyWithPeers, maxRunBytes: options.httpMaxRunBytesWithPeers, mayTakeServable: false, isSwarm };
  }

  #runBytes(start: number, count: number): number {
    const { manifest } = this.#options;
    return chunkRange(manifest, start + count - 1).end - chunkRange(manifest, start).start;
  }

  /** Wait until something changes (a chunk, a peer, freed memory), at most `limitMs`. */
  #idle(limitMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, limitMs);
      this.#wakeResolvers.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
