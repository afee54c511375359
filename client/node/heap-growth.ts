import { setFlagsFromString } from 'node:v8';

/**
 * How far V8 lets the old generation grow past what survived the last full collection before
 * it starts the next one (V8's --heap-growing-percent; it otherwise picks a factor of 1.1-4
 * from its own measurements).
 *
 * A peer client keeps about 11 MB of live objects while tens of MB/s of data-channel messages,
 * blocks and chunks pass through ArrayBuffers, and V8 counts ArrayBuffer memory allocated since
 * the last full collection against the old generation's limit. On so small a heap the limit
 * sat about 16 MB above the live size, so marking began again about 0.5 s after each full
 * collection ended. bench/swarm: 66-79 full collections per client in 40 s. With this setting,
 * 8-15, and mean completion went from 40.3 to 34.9 s (one round each, same machine).
 * The cost is bounded: at most 4x the live heap before the next full collection.
 */
export const HEAP_GROWING_PERCENT = 300;

/**
 * For the CLI's `seed` and peer-assisted `get` only, before the transfer starts: the setting
 * is process-wide, and V8 reads it at every full collection, so it holds from then on.
 */
export function growHeapForTransfers(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
