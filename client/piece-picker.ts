import type { Bitfield } from '../protocol/index.ts';

/**
 * Chooses which chunks to ask for: rarest-first from peers, and for HTTP the runs of
 * adjacent chunks that no peer able to serve us has. Pure bookkeeping, no I/O.
 */
export class PiecePicker {
  readonly chunkCount: number;
  /** How many connected peers have each chunk. */
  readonly #availability: Uint16Array;
  /** How many peers that are unchoking us have each chunk (what peers can serve now). */
  readonly #servable: Uint16Array;
  /** A per-client random order, so that ties in rarity differ between clients. */
  readonly #order: Uint32Array;
  readonly #random: () => number;

  constructor(chunkCount: number, random: () => number = Math.random) {
    this.chunkCount = chunkCount;
    this.#random = random;
    this.#availability = new Uint16Array(chunkCount);
    this.#servable = new Uint16Array(chunkCount);
    this.#order = new Uint32Array(chunkCount);
    for (let i = 0; i < chunkCount; i++) this.#order[i] = i;
    for (let i = chunkCount - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = this.#order[i]!;
      this.#order[i] = this.#order[j]!;
      this.#order[j] = t;
    }
  }

  availability(index: number): number {
    return this.#availability[index] ?? 0;
  }

  servable(index: number): number {
    return this.#servable[index] ?? 0;
  }

  addBitfield(bitfield: Bitfield, isServable: boolean): void {
    this.#apply(bitfield, 1, true);
    if (isServable) this.#apply(bitfield, 1, false);
  }

  removeBitfield(bitfield: Bitfield, wasServable: boolean): void {
    this.#apply(bitfield, -1, true);
    if (wasServable) this.#apply(bitfield, -1, false);
  }

  setServable(bitfield: Bitfield, isServable: boolean): void {
    this.#apply(bitfield, isServable ? 1 : -1, false);
  }

  addHave(index: number, isServable: boolean): void {
    if (index < 0 || index >= this.chunkCount) return;
    this.#availability[index]!++;
    if (isServable) this.#servable[index]!++;
  }

  /**
   * Up to `max` chunks the peer has and `isCandidate` accepts, rarest first; ties are
   * broken by this client's random order.
   */
  pickRarest(peerHas: Bitfield, isCandidate: (index: number) => boolean, max: number): number[] {
    if (max <= 0) return [];
    const picked: Array<{ index: number; rarity: number; rank: number }> = [];
    for (let rank = 0; rank < this.chunkCount; rank++) {
      const index = this.#order[rank]!;
      if (!peerHas.get(index) || !isCandidate(index)) continue;
      const rarity = this.#availability[index]!;
      if (picked.length < max) {
        picked.push({ index, rarity, rank });
        picked.sort((a, b) => a.rarity - b.rarity || a.rank - b.rank);
      } else if (rarity < picked[picked.length - 1]!.rarity) {
        picked[picked.length - 1] = { index, rarity, rank };
        picked.sort((a, b) => a.rarity - b.rarity || a.rank - b.rank);
      }
    }
    return picked.map((entry) => entry.index);
  }

  /**
   * A run of adjacent chunks for one HTTP Range request. It continues from `cursor` (the
   * chunk after this lane's last run) when that chunk is still a candidate; otherwise it
   * jumps into a gap of candidates, away from the frontiers at its ends (see #pointInAGap).
   * `startOffset` is where a lane begins when it has no cursor yet. With `avoidServable`,
   * chunks a peer can serve are not candidates; with `avoidAvailable`, neither are chunks any
   * connected peer has (even one choking us now): a peer will have them for us sooner or
   * later, and HTTP is the scarce source.
   */
  pickHttpRun(options: {
    isFree: (index: number) => boolean;
    cursor: number | undefined;
    startOffset: number;
    maxRunChunks: number;
    avoidServable: boolean;
    avoidAvailable?: boolean;
    /** Chunks HTTP must take even though a peer could serve them (the peers missed deadlines). */
    isForcedHttp?: (index: number) => boolean;
  }): { start: number; count: number } | undefined {
    const n = this.chunkCount;
    if (n === 0) return undefined;
    const counts = options.avoidAvailable ? this.#availability : options.avoidServable ? this.#servable : undefined;
    const isCandidate = (index: number) => options.isFree(index) && (!counts || counts[index] === 0 || (options.isForcedHttp?.(index) ?? false));
    let start: number | undefined;
    if (options.cursor !== undefined && options.cursor < n && isCandidate(options.cursor)) {
      start = options.cursor;
    } else if (options.cursor === undefined) {
      const offset = ((options.startOffset % n) + n) % n;
      for (let step = 0; step < n; step++) {
        const index = (offset + step) % n;
        if (isCandidate(index)) {
          start = index;
          break;
        }
      }
    } else {
      start = this.#pointInAGap(isCandidate);
    }
    if (start === undefined) return undefined;
    let count = 1;
    while (count < options.maxRunChunks && start + count < n && isCandidate(start + count)) count++;
    return { start, count };
  }

  /**
   * A chunk in the middle half of a gap of candidates, the gap drawn with odds by its length
   * squared (large gaps first). Not the exact middle of the largest gap: clients of one swarm
   * know much the same, so all of them took the very same chunk from the origin (bench/swarm).
   */
  #pointInAGap(isCandidate: (index: number) => boolean): number | undefined {
    const gaps: Array<{ start: number; length: number }> = [];
    let runStart = -1;
    for (let index = 0; index <= this.chunkCount; index++) {
      if (index < this.chunkCount && isCandidate(index)) {
        if (runStart < 0) runStart = index;
        continue;
      }
      if (runStart >= 0) gaps.push({ start: runStart, length: index - runStart });
      runStart = -1;
    }
    if (gaps.length === 0) return undefined;
    let draw = this.#random() * gaps.reduce((sum, gap) => sum + gap.length ** 2, 0);
    const gap = gaps.find((candidate) => (draw -= candidate.length ** 2) < 0) ?? gaps[gaps.length - 1]!;
    const offset = Math.floor(gap.length / 4 + this.#random() * Math.max(1, gap.length / 2));
    return gap.start + Math.min(gap.length - 1, offset);
  }

  #apply(bitfield: Bitfield, delta: 1 | -1, all: boolean): void {
    const counts = all ? this.#availability : this.#servable;
    const limit = Math.min(bitfield.length, this.chunkCount);
    for (let index = 0; index < limit; index++) {
      if (!bitfield.get(index)) continue;
      const next = counts[index]! + delta;
      counts[index] = next < 0 ? 0 : next;
    }
  }
}
