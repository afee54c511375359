/** A value now, or a promise of it: what a store call returns (memory: now; Redis: later). */
export type Maybe<T> = T | Promise<T>;

/** One pending store call inside a step function; `runSteps` settles it. */
export class Awaiting<T = unknown> {
  outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  constructor(readonly step: Maybe<T>) {}

  resolve(value: T): void {
    this.outcome = { ok: true, value };
  }

  reject(error: unknown): void {
    this.outcome = { ok: false, error };
  }
}

/** What a step function is: a generator that yields store calls and finally returns. */
export type Steps = Generator<Awaiting, void, void>;

/**
 * Inside a step function, `const x = yield* settle(store.call())` is `await store.call()`
 * that costs nothing when the call answered synchronously.
 */
export function* settle<T>(step: Maybe<T>): Generator<Awaiting, T, void> {
  const awaiting = new Awaiting<T>(step);
  yield awaiting;
  const outcome = awaiting.outcome;
  if (!outcome) throw new Error('a step was resumed before it settled');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

/**
 * Run a step function. Synchronous store answers are taken at once, so with the memory store
 * a whole announce runs without a promise or a microtask; the first real promise switches to
 * an async continuation. Returns undefined when everything ran synchronously (a throw then
 * reaches the caller directly), else a promise that settles when the steps are done.
 */
export function runSteps(steps: Steps): Promise<void> | undefined {
  for (;;) {
    const next = steps.next();
    if (next.done) return undefined;
    const awaiting = next.value;
    if (awaiting.step instanceof Promise) return continueAsync(steps, awaiting);
    awaiting.resolve(awaiting.step);
  }
}

async function continueAsync(steps: Steps, first: Awaiting): Promise<void> {
  let awaiting = first;
  for (;;) {
    try {
      awaiting.resolve(await awaiting.step);
    } catch (error) {
      awaiting.reject(error);
    }
    const next = steps.next();
    if (next.done) return;
    awaiting = next.value;
  }
}
