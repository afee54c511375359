import { describe, expect, it } from 'vitest';
import { HttpShares } from '../../client/http-shares.ts';

const ids = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(40));

describe('HttpShares: which client fetches which block from the origin', () => {
  it('clients that see the same members give every block exactly one owner, spread evenly', () => {
    const blocks = 256;
    const owners = new Array<number>(blocks).fill(0);
    const perClient = ids.map((self) => {
      const shares = new HttpShares(self);
      shares.setMembers(ids.filter((id) => id !== self), 4);
      let owned = 0;
      for (let block = 0; block < blocks; block++) {
        if (shares.owns(block * 4)) {
          owners[block]!++;
          owned++;
        }
      }
      return owned;
    });
    expect(owners.every((count) => count === 1)).toBe(true);
    // 32 each on average: no client is left with a tiny or a huge share.
    for (const owned of perClient) expect(owned).toBeGreaterThan(16);
    for (const owned of perClient) expect(owned).toBeLessThan(48);
  });

  it('a block is the run-sized group of chunks: its chunks share one owner', () => {
    const shares = new HttpShares(ids[0]!);
    shares.setMembers(ids.slice(1), 4);
    for (let block = 0; block < 64; block++) {
      const first = shares.owns(block * 4);
      for (let offset = 1; offset < 4; offset++) expect(shares.owns(block * 4 + offset)).toBe(first);
    }
  });

  it('alone, a client owns everything; a member that leaves hands its blocks on', () => {
    const shares = new HttpShares(ids[0]!);
    shares.setMembers([], 4);
    expect(Array.from({ length: 32 }, (_, block) => shares.owns(block * 4)).every(Boolean)).toBe(true);
    shares.setMembers([ids[1]!], 4);
    const withOne = Array.from({ length: 64 }, (_, block) => shares.owns(block * 4));
    shares.setMembers([ids[1]!, ids[2]!], 4);
    const withTwo = Array.from({ length: 64 }, (_, block) => shares.owns(block * 4));
    // Rendezvous hashing: a new member takes blocks from each, never moves blocks between the others.
    withTwo.forEach((owned, block) => {
      if (owned) expect(withOne[block]).toBe(true);
    });
    expect(withTwo.filter(Boolean).length).toBeLessThan(withOne.filter(Boolean).length);
  });
});
