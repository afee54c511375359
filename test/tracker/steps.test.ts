import { describe, expect, it } from 'vitest';
import { runSteps, settle, type Steps } from '../../tracker/store/steps.ts';

/** A step function that records what it saw: two calls, the second one may fail. */
function* twoCalls(first: number | Promise<number>, second: () => number | Promise<number>, seen: unknown[]): Steps {
  seen.push(yield* settle(first));
  try {
    seen.push(yield* settle(second()));
  } catch (error) {
    seen.push(`caught ${(error as Error).message}`);
  }
  seen.push('done');
}

describe('step functions', () => {
  it('run to the end synchronously when every call answers now', () => {
    const seen: unknown[] = [];
    expect(runSteps(twoCalls(1, () => 2, seen))).toBeUndefined();
    expect(seen).toEqual([1, 2, 'done']);
  });

  it('continue asynchronously from the first promise, in order', async () => {
    const seen: unknown[] = [];
    const pending = runSteps(twoCalls(Promise.resolve(1), () => 2, seen));
    expect(pending).toBeInstanceOf(Promise);
    expect(seen).toEqual([]);
    await pending;
    expect(seen).toEqual([1, 2, 'done']);
  });

  it('deliver failures where the call was made, synchronous throw or rejection alike', async () => {
    const sync: unknown[] = [];
    const pending = runSteps(
      twoCalls(1, () => {
        throw new Error('now');
      }, sync),
    );
    expect(pending).toBeUndefined();
    expect(sync).toEqual([1, 'caught now', 'done']);
    const later: unknown[] = [];
    await runSteps(twoCalls(Promise.resolve(1), () => Promise.reject(new Error('later')), later));
    expect(later).toEqual([1, 'caught later', 'done']);
  });

  it('throws an uncaught failure to the caller: directly when synchronous, as a rejection otherwise', async () => {
    function* failing(value: number | Promise<number>): Steps {
      yield* settle(value);
      throw new Error('refused');
    }
    expect(() => runSteps(failing(1))).toThrow('refused');
    await expect(runSteps(failing(Promise.resolve(1)))).rejects.toThrow('refused');
    function* rejected(): Steps {
      yield* settle(Promise.reject(new Error('store down')));
    }
    await expect(runSteps(rejected())).rejects.toThrow('store down');
  });
});
