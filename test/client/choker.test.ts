import { describe, expect, it } from 'vitest';
import { Choker, chooseUnchoked, pickOptimistic, type ChokeCandidate } from '../../client/peer/choker.ts';

const peer = (id: string, rateBytesPerSecond: number, isInterested = true): ChokeCandidate => ({ id, rateBytesPerSecond, isInterested });

describe('choker', () => {
  it('unchokes the best-rated interested peers, plus the optimistic one if it is interested', () => {
    const candidates = [peer('a', 10), peer('b', 30), peer('c', 20), peer('d', 99, false), peer('e', 0)];
    expect(chooseUnchoked(candidates, 2, undefined)).toEqual(new Set(['b', 'c']));
    expect(chooseUnchoked(candidates, 2, 'e')).toEqual(new Set(['b', 'c', 'e']));
    expect(chooseUnchoked(candidates, 2, 'd')).toEqual(new Set(['b', 'c']));
    expect(pickOptimistic(candidates, new Set(['b', 'c']), () => 0.99)).toBe('e');
    expect(pickOptimistic([peer('a', 1)], new Set(['a']))).toBeUndefined();
  });

  it('Choker keeps its optimistic peer for three rounds, unless that peer leaves', () => {
    const rolls = [0, 0.99, 0];
    const choker = new Choker(1, () => rolls.shift() ?? 0);
    const candidates = [peer('a', 50), peer('b', 1), peer('c', 2)];
    // Round 1 picks among b and c (a is unchoked on merit): roll 0 -> b.
    expect(choker.round(candidates)).toEqual(new Set(['a', 'b']));
    expect(choker.round(candidates)).toEqual(new Set(['a', 'b']));
    expect(choker.round(candidates)).toEqual(new Set(['a', 'b']));
    // Round 4: a new pick (roll 0.99 -> c).
    expect(choker.round(candidates)).toEqual(new Set(['a', 'c']));
    // c leaves: picked again at once (roll 0 -> b).
    expect(choker.round([peer('a', 50), peer('b', 1)])).toEqual(new Set(['a', 'b']));
  });
});
