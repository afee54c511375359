import { PfError, isPfError } from '../protocol/index.ts';
import { backoffMs, sleep } from './sleep.ts';

/** Codes that say the server or the network is away (not that it answered wrongly). */
const CONNECTION_LOSS_CODES: readonly string[] = ['PF_ERR_UPSTREAM', 'PF_ERR_STORE_UNAVAILABLE', 'PF_ERR_RATE_LIMITED'];

export function isConnectionLoss(error: unknown): boolean {
  return isPfError(error) && CONNECTION_LOSS_CODES.includes(error.code);
}

export interface OutageOptions {
  /** How long an outage is ridden out before the download fails; 0 = at the first loss. */
  retryForMs: number;
  /** First wait [1 s]; each loss in a row doubles it up to maxMs [30 s], with jitter. */
  baseMs?: number;
  maxMs?: number;
  nowMs?: () => number;
  random?: () => number;
}

/** What a caller waits before trying again. */
export interface OutageWait {
  delayMs: number;
  /** Since the first loss of this outage. */
  downForMs: number;
  retryForMs: number;
  error: unknown;
  /** Another request's loss during a wait already reported. */
  isRepeat: boolean;
}

/**
 * One download's view of its connection: losses in a row make an outage, ridden out with
 * capped exponential backoff and jitter for at most `retryForMs`; anything that gets
 * through ends it. Pure: time and randomness are injected.
 */
export class Outage {
  readonly #options: Required<OutageOptions>;
  #sinceMs: number | undefined;
  #losses = 0;
  /** When the wait handed out last ends: losses before then are the same loss, seen by another request. */
  #retryAtMs = 0;

  constructor(options: OutageOptions) {
    this.#options = { baseMs: 1000, maxMs: 30_000, nowMs: () => Date.now(), random: Math.random, ...options };
  }

  get isDown(): boolean {
    return this.#sinceMs !== undefined;
  }

  /**
   * A request failed for want of the server or the network: the wait before the next try, or
   * undefined to give up. Requests that fail during a wait are told the rest of it (`isRepeat`).
   */
  lost(error: unknown): OutageWait | undefined {
    const now = this.#options.nowMs();
    this.#sinceMs ??= now;
    const downForMs = now - this.#sinceMs;
    const { retryForMs } = this.#options;
    if (downForMs >= retryForMs) return undefined;
    if (now < this.#retryAtMs) return { delayMs: this.#retryAtMs - now, downForMs, retryForMs, error, isRepeat: true };
    const delayMs = Math.min(backoffMs(this.#losses++, this.#options.baseMs, this.#options.maxMs, this.#options.random), retryForMs - downForMs);
    this.#retryAtMs = now + delayMs;
    return { delayMs, downForMs, retryForMs, error, isRepeat: false };
  }

  /** Something got through: the outage (if any) is over. */
  back(): void {
    this.#sinceMs = undefined;
    this.#losses = 0;
    this.#retryAtMs = 0;
  }

  /** The error to fail with once the outage outlasted retryForMs. */
  giveUp(error: unknown): PfError {
    const cause = error instanceof Error ? error.message : String(error);
    const lasted = this.#options.retryForMs > 0 ? ` for ${formatDuration(this.#options.retryForMs)} (--retry-for)` : '';
    return new PfError('PF_ERR_UPSTREAM', `connection lost${lasted}: ${cause}`, { cause: error });
  }
}

/**
 * `attempt` until it succeeds, riding out connection losses as `outage` allows: each wait is
 * reported to `onWait` first. Other errors, and a loss past the outage's limit, are thrown.
 */
export async function retryWhileDown<T>(attempt: () => Promise<T>, outage: Outage, onWait: (wait: OutageWait) => void, signal?: AbortSignal): Promise<T> {
  for (;;) {
    try {
      const value = await attempt();
      outage.back();
      return value;
    } catch (error) {
      if (!isConnectionLoss(error) || signal?.aborted) throw error;
      const wait = outage.lost(error);
      if (!wait) throw outage.giveUp(error);
      onWait(wait);
      await sleep(wait.delayMs, signal);
    }
  }
}

export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  return `${Math.round(seconds / 60)} min`;
}
