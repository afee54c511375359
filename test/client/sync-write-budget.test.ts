import { describe, expect, it } from 'vitest';
import { SYNC_WRITE_RETRY_MS, SyncWriteBudget } from '../../client/node/sync-write-budget.ts';

/** A budget on a clock that moves only when a write "takes" time. */
function budgetAt(share: number) {
  let nowMs = 0;
  const budget = new SyncWriteBudget(share, () => nowMs);
  return {
    budget,
    /** One synchronous write that takes `ms`, then `idleMs` with nothing written. */
    write: (ms: number, idleMs = 0) => {
      budget.time(() => (nowMs += ms));
      nowMs += idleMs;
    },
    wait: (ms: number) => {
      nowMs += ms;
    },
  };
}

describe('SyncWriteBudget', () => {
  it('allows synchronous writes while they take at most their share of each second, and one slow write does not end that', () => {
    const { budget, write } = budgetAt(0.3);
    for (let i = 0; i < 100; i++) write(2, 18); // 10 % of the time, for 2 s
    expect(budget.allowsSync).toBe(true);
    write(35, 100); // a single slow write
    expect(budget.allowsSync).toBe(true);
  });

  it('sends writes off the thread once they take more than their share, and tries again later', () => {
    const { budget, write, wait } = budgetAt(0.3);
    for (let i = 0; i < 7; i++) write(50, 50); // 50 % of the time
    expect(budget.allowsSync).toBe(false);
    wait(SYNC_WRITE_RETRY_MS - 500);
    expect(budget.allowsSync).toBe(false);
    wait(500);
    expect(budget.allowsSync).toBe(true);
    // The disk is fast again: synchronous from then on.
    for (let i = 0; i < 50; i++) write(1, 9);
    expect(budget.allowsSync).toBe(true);
    // Or it is still slow: off the thread again after one share of one window.
    for (let i = 0; i < 4; i++) write(90, 10);
    expect(budget.allowsSync).toBe(false);
  });

  it('with a share of 0 never allows one', () => {
    const { budget } = budgetAt(0);
    expect(budget.allowsSync).toBe(false);
  });
});
