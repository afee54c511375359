import type { PeerRecord, SwarmCounts } from './store.ts';

/**
 * One swarm's peers in memory: a map for lookups plus a dense array so that picking
 * random peers costs O(count), not O(swarm size).
 */
export class SwarmTable {
  private readonly ids: string[] = [];
  private readonly byId = new Map<string, { record: PeerRecord; index: number }>();
  complete = 0;
  incomplete = 0;

  get size(): number {
    return this.ids.length;
  }

  get(peerId: string): PeerRecord | undefined {
    return this.byId.get(peerId)?.record;
  }

  /** Insert or replace; returns true if the peer is new. */
  set(record: PeerRecord): boolean {
    const existing = this.byId.get(record.peerId);
    if (existing) {
      if (existing.record.complete !== record.complete) {
        const change = record.complete ? 1 : -1;
        this.complete += change;
        this.incomplete -= change;
      }
      existing.record = record;
      return false;
    }
    this.byId.set(record.peerId, { record, index: this.ids.length });
    this.ids.push(record.peerId);
    if (record.complete) this.complete++;
    else this.incomplete++;
    return true;
  }

  delete(peerId: string): boolean {
    const entry = this.byId.get(peerId);
    if (!entry) return false;
    this.byId.delete(peerId);
    const last = this.ids.pop()!;
    if (last !== peerId) {
      this.ids[entry.index] = last;
      this.byId.get(last)!.index = entry.index;
    }
    if (entry.record.complete) this.complete--;
    else this.incomplete--;
    return true;
  }

  counts(): SwarmCounts {
    return { complete: this.complete, incomplete: this.incomplete };
  }

  random(count: number, excludePeerId: string): PeerRecord[] {
    const size = this.ids.length;
    const out: PeerRecord[] = [];
    if (count <= 0 || size === 0) return out;
    if (count * 2 >= size) {
      // Small swarm: a shuffled copy.
      const order = this.ids.slice();
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const id of order) {
        if (out.length >= count) break;
        if (id !== excludePeerId) out.push(this.byId.get(id)!.record);
      }
      return out;
    }
    const picked = new Set<number>();
    let attempts = 0;
    while (out.length < count && attempts < count * 4) {
      attempts++;
      const index = Math.floor(Math.random() * size);
      if (picked.has(index)) continue;
      picked.add(index);
      const id = this.ids[index]!;
      if (id !== excludePeerId) out.push(this.byId.get(id)!.record);
    }
    return out;
  }

  *records(): IterableIterator<PeerRecord> {
    for (const entry of this.byId.values()) yield entry.record;
  }
}
