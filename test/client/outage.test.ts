import { describe, expect, it } from 'vitest';
import { Outage, isConnectionLoss, retryWhileDown } from '../../client/outage.ts';
import { PfError } from '../../protocol/index.ts';

const lost = new PfError('PF_ERR_UPSTREAM', 'nothing is listening');

describe('Outage (pure: clock and randomness injected)', () => {
  it('waits grow exponentially with jitter up to the cap, and the outage gives up after retryForMs', () => {
    let now = 0;
    let random = 0;
    const outage = new Outage({ retryForMs: 120_000, baseMs: 1000, maxMs: 8000, nowMs: () => now, random: () => random });
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const wait = outage.lost(lost)!;
      expect(wait.isRepeat).toBe(false);
      waits.push(wait.delayMs);
      now += wait.delayMs;
    }
    // random 0: half of each ceiling (1, 2, 4, 8, 8, 8 s).
    expect(waits).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    random = 1;
    expect(outage.lost(lost)!.delayMs).toBe(8000);
    now = 120_000;
    expect(outage.lost(lost)).toBeUndefined();
    expect(outage.giveUp(lost).message).toBe('connection lost for 2 min (--retry-for): nothing is listening');
  });

  it('losses during a wait are the same loss (the rest of the wait, not a new step); a success ends the outage', () => {
    let now = 0;
    const outage = new Outage({ retryForMs: 60_000, nowMs: () => now, random: () => 0.5 });
    const first = outage.lost(lost)!;
    now += 100;
    const repeat = outage.lost(lost)!;
    expect(repeat).toMatchObject({ isRepeat: true, delayMs: first.delayMs - 100, downForMs: 100 });
    outage.back();
    expect(outage.isDown).toBe(false);
    expect(outage.lost(lost)!).toMatchObject({ isRepeat: false, delayMs: first.delayMs, downForMs: 0 });
  });

  it('retryForMs 0 gives up at the first loss; the last wait never passes the limit', () => {
    let now = 0;
    expect(new Outage({ retryForMs: 0, nowMs: () => now }).lost(lost)).toBeUndefined();
    const outage = new Outage({ retryForMs: 1500, baseMs: 1000, nowMs: () => now, random: () => 1 });
    expect(outage.lost(lost)!.delayMs).toBe(1000);
    now = 1000;
    expect(outage.lost(lost)!.delayMs).toBe(500);
  });

  it('only a lost server or network is ridden out: a wrong answer or a wrong URL is thrown at once', async () => {
    expect(isConnectionLoss(lost)).toBe(true);
    expect(isConnectionLoss(new PfError('PF_ERR_BAD_REQUEST', 'does not speak TLS'))).toBe(false);
    expect(isConnectionLoss(new PfError('PF_ERR_MANIFEST_INVALID'))).toBe(false);
    expect(isConnectionLoss(new Error('ECONNREFUSED'))).toBe(false);
    const outage = new Outage({ retryForMs: 60_000, baseMs: 1, maxMs: 1 });
    let calls = 0;
    const waits: number[] = [];
    const value = await retryWhileDown(
      () => {
        calls++;
        return calls < 3 ? Promise.reject(lost) : Promise.resolve('up');
      },
      outage,
      (wait) => waits.push(wait.delayMs),
    );
    expect(value).toBe('up');
    expect(waits).toHaveLength(2);
    expect(outage.isDown).toBe(false);
    await expect(retryWhileDown(() => Promise.reject(new PfError('PF_ERR_FILE_NOT_FOUND')), outage, () => undefined)).rejects.toMatchObject({ code: 'PF_ERR_FILE_NOT_FOUND' });
  });
});
