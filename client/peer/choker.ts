/** What the choker needs to know about one connected peer. */
export interface ChokeCandidate {
  id: string;
  isInterested: boolean;
  /** Recent bytes per second we received from it (tit-for-tat) or sent to it when seeding. */
  rateBytesPerSecond: number;
}

/**
 * Which peers get an upload slot: the `slots` best-rated interested peers, plus one
 * optimistic unchoke so newcomers (who have nothing to give yet) get a start.
 */
export function chooseUnchoked(candidates: readonly ChokeCandidate[], slots: number, optimisticId: string | undefined): Set<string> {
  const interested = candidates.filter((c) => c.isInterested);
  interested.sort((a, b) => b.rateBytesPerSecond - a.rateBytesPerSecond || (a.id < b.id ? -1 : 1));
  const unchoked = new Set(interested.slice(0, slots).map((c) => c.id));
  if (optimisticId !== undefined && interested.some((c) => c.id === optimisticId)) unchoked.add(optimisticId);
  return unchoked;
}

/** The next optimistic unchoke: a random interested peer not already unchoked. */
export function pickOptimistic(candidates: readonly ChokeCandidate[], unchoked: ReadonlySet<string>, random: () => number = Math.random): string | undefined {
  const pool = candidates.filter((c) => c.isInterested && !unchoked.has(c.id));
  if (pool.length === 0) return undefined;
  return pool[Math.floor(random() * pool.length)]!.id;
}

/**
 * Rechoke rounds: each round unchokes the best-rated peers, and every third round (or when
 * the optimistic peer left) picks a new optimistic one, as BitTorrent does.
 */
export class Choker {
  readonly #slots: number;
  readonly #random: () => number;
  #optimisticId: string | undefined;
  #rounds = 0;

  constructor(slots: number, random: () => number = Math.random) {
    this.#slots = slots;
    this.#random = random;
  }

  /** The ids to unchoke this round; every other candidate is choked. */
  round(candidates: readonly ChokeCandidate[]): Set<string> {
    if (this.#rounds++ % 3 === 0 || !candidates.some((c) => c.id === this.#optimisticId)) {
      this.#optimisticId = pickOptimistic(candidates, chooseUnchoked(candidates, this.#slots, undefined), this.#random);
    }
    return chooseUnchoked(candidates, this.#slots, this.#optimisticId);
  }
}
