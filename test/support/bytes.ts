/** Fill `out` with deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function fillPattern<T extends Uint8Array>(out: T, seed = 1): T {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
