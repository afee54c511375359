import type { Manifest } from '../protocol/index.ts';
import type { HttpFiller } from './http-filler.ts';
import type { ResolvedOptions } from './options.ts';
import { httpSource, type Scheduler, type SourceId } from './scheduler.ts';
import { sleep } from './sleep.ts';

export interface HttpLanesOptions {
  manifest: Manifest;
  scheduler: Scheduler;
  filler: HttpFiller;
  options: Pick<ResolvedOptions, 'httpConcurrency' | 'httpConcurrencyWithPeers' | 'httpMaxRunBytes' | 'httpMaxRunBytesWithPeers'>;
  /** Peers may still connect (a tracker runs and the start is recent): fill cautiously. */
  isPeerGrace: () => boolean;
  /** Verify, store and announce one chunk; false = bad bytes. */
  acceptChunk: (index: number, bytes: Uint8Array, source: SourceId) => Promise<boolean>;
  /** In-flight memory shared with the peers: one chunk per lane while it fetches. */
  reserve: (bytes: number) => boolean;
  unreserve: (bytes: number) => void;
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
    const { scheduler, manifest, filler, options } = this.#options;
    while (!signal.aborted && !scheduler.isComplete()) {
      // Until peers had a moment to connect, fill cautiously (short runs, fewer lanes).
      // Peers that have what we need but choke us still count: a client that went full speed on
      // HTTP while its swarm choked it fetched nearly the whole file from the origin (bench/swarm).
      const hasPeers = scheduler.hasServingPeers() || scheduler.peersHaveWantedChunks() || this.#options.isPeerGrace();
      const laneCount = hasPeers ? options.httpConcurrencyWithPeers : options.httpConcurrency;
      if (lane >= laneCount || !this.#options.reserve(manifest.chunk_size)) {
        await this.#idle();
        continue;
      }
      const maxRunBytes = hasPeers ? options.httpMaxRunBytesWithPeers : options.httpMaxRunBytes;
      // Runs no longer than an even share of what is left, so every lane has work.
      const left = scheduler.chunkCount - scheduler.have.count();
      const maxRunChunks = Math.max(1, Math.min(Math.floor(maxRunBytes / manifest.chunk_size), Math.ceil(left / laneCount)));
      const run = scheduler.nextHttpRun(lane, { laneCount, maxRunChunks, mayTakeServable: !hasPeers });
      if (!run) {
        this.#options.unreserve(manifest.chunk_size);
        await this.#idle();
        continue;
      }
      const source = httpSource(lane);
      try {
        const handOverAfter = Math.max(1, Math.floor(options.httpMaxRunBytesWithPeers / manifest.chunk_size));
        let delivered = 0;
        await filler.fetchRun(
          run.start,
          run.count,
          async (index, bytes) => {
            const isGood = await this.#options.acceptChunk(index, bytes, source);
            if (!isGood) return false;
            // Peers appeared mid-run: hand the rest of a long run over to them.
            if (++delivered >= handOverAfter && scheduler.hasServingPeers()) return 'stop';
            // The run's next chunk reached a peer that serves us since the run started: stop
            // here rather than take it from the origin too; the lane picks chunks no peer has.
            const next = index + 1;
            if (next < run.start + run.count && scheduler.picker.servable(next) > 0) return 'stop';
            return true;
          },
          signal,
        );
        this.#failures = 0;
      } catch (error) {
        scheduler.releaseAll(source);
        if (signal.aborted) break;
        this.#failures++;
        this.#options.warn('HTTP run failed', { lane, start: run.start, count: run.count, error: String(error) });
        // With no peer to fall back on, persistent HTTP failure is fatal.
        if (this.#failures >= options.httpConcurrency * 2 && !scheduler.hasServingPeers()) {
          this.#options.fail(error);
          break;
        }
        await sleep(1000, signal).catch(() => undefined);
      } finally {
        scheduler.releaseAll(source);
        this.#options.unreserve(manifest.chunk_size);
      }
    }
  }

  /** Wait until something changes (a chunk, a peer, freed memory), at most 1 s. */
  #idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.#wakeResolvers.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
