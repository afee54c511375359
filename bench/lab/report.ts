// What bench/lab prints of a crowd's clients beyond their times: why work went to HTTP, and where the origin's extra copies went.
import type { GetResult } from '../../test/lab/peerfill.ts';

/** What moved work to HTTP in one client (its last progress event's policy). */
export function decisionsOf(result: GetResult): string {
  const policy = result.lastProgress?.policy as { decisions?: { servable_to_http?: number; late_to_http?: number; choked_to_http?: number } } | undefined;
  return `${policy?.decisions?.servable_to_http ?? '?'}/${policy?.decisions?.late_to_http ?? '?'}/${policy?.decisions?.choked_to_http ?? '?'}`;
}

/**
 * Where the origin's extra copies went: how many chunks reached 1, 2, 3… clients over HTTP,
 * how far apart in time the copies of one chunk landed, and when each client met its peers.
 */
export function httpOverlap(results: GetResult[]): string {
  const byChunk = new Map<number, number[]>();
  for (const result of results) for (const [index, source] of result.chunkSources) if (source === 'http') byChunk.set(index, [...(byChunk.get(index) ?? []), result.chunkAtMs.get(index) ?? Number.NaN]);
  const histogram = new Map<number, number>();
  const gapsMs: number[] = [];
  for (const times of byChunk.values()) {
    histogram.set(times.length, (histogram.get(times.length) ?? 0) + 1);
    if (times.length > 1) gapsMs.push(Math.max(...times) - Math.min(...times));
  }
  gapsMs.sort((a, b) => a - b);
  const quantile = (q: number) => ((gapsMs[Math.floor(q * (gapsMs.length - 1))] ?? Number.NaN) / 1000).toFixed(1);
  const meets = results.map((result) => `${result.peerAtMs.length}@${((result.peerAtMs[0] ?? Number.NaN) / 1000).toFixed(1)}-${((result.peerAtMs[result.peerAtMs.length - 1] ?? Number.NaN) / 1000).toFixed(1)}s`);
  return `chunks by HTTP copies: ${[...histogram].sort((a, b) => a[0] - b[0]).map(([copies, chunks]) => `${copies}x ${chunks}`).join(', ')}; spread between copies p50 ${quantile(0.5)} s, p90 ${quantile(0.9)} s; peers met (count@first-last): ${meets.join(', ')}`;
}
