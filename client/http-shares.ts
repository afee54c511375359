/**
 * Which client of a swarm fetches which part of the file from the origin. In a flash crowd
 * every client's HTTP lanes look for chunks no peer has; clients know much the same, so they
 * picked the same chunks within the second it takes a pf_loading claim to travel, and the
 * origin sent them twice (bench/lab L3). Rendezvous hashing (highest random weight) gives
 * every block of `blockChunks` chunks one owner among the members each client sees (itself
 * and its connected peers): a lane takes its own blocks, and another's only while that owner's
 * HTTP is idle (it claims nothing: see Scheduler.nextHttpRun). Clients that see the same members
 * agree without a message; where their views differ, a block has two owners at worst, and the
 * claims (pf_loading) still apply.
 */
export class HttpShares {
  readonly #self: number;
  #members: number[] = [];
  #memberIds: string[] = [];
  #membersKey = '';
  /** Block -> its owner's index in the members, -1 for us, for the current members and block size. */
  readonly #owners = new Map<number, number>();
  #blockChunks = 1;

  constructor(selfPeerIdHex: string) {
    this.#self = hashId(selfPeerIdHex);
  }

  /** The peers seen now (hex ids); a change of members or block size forgets the owners. */
  setMembers(peerIdsHex: readonly string[], blockChunks: number): void {
    const key = [...peerIdsHex].sort().join(',');
    if (key === this.#membersKey && blockChunks === this.#blockChunks) return;
    this.#membersKey = key;
    this.#blockChunks = Math.max(1, blockChunks);
    this.#memberIds = [...peerIdsHex];
    this.#members = peerIdsHex.map(hashId);
    this.#owners.clear();
  }

  /** Whether the block holding chunk `index` is ours to fetch from the origin. */
  owns(index: number): boolean {
    return this.#ownerIndex(index) < 0;
  }

  /** The hex id of the member whose block holds chunk `index`; undefined when it is ours. */
  ownerOf(index: number): string | undefined {
    const owner = this.#ownerIndex(index);
    return owner < 0 ? undefined : this.#memberIds[owner];
  }

  #ownerIndex(index: number): number {
    const block = Math.floor(index / this.#blockChunks);
    let owner = this.#owners.get(block);
    if (owner === undefined) {
      owner = -1;
      let best = weight(this.#self, block);
      let bestSeed = this.#self;
      this.#members.forEach((member, i) => {
        const w = weight(member, block);
        if (w > best || (w === best && member > bestSeed)) {
          best = w;
          bestSeed = member;
          owner = i;
        }
      });
      this.#owners.set(block, owner);
    }
    return owner;
  }
}

/** FNV-1a of the id's text: a member's seed for its weights. */
function hashId(idHex: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < idHex.length; i++) hash = Math.imul(hash ^ idHex.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** A member's weight for a block: murmur3's finaliser over seed and block (uniform, cheap). */
function weight(seed: number, block: number): number {
  let h = (seed ^ Math.imul(block + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
