// What bench/lab prints of a crowd's clients beyond their times: why work went to HTTP, and where the origin's extra copies went.
import type { GetResult } from '../../test/lab/peerfill.ts';

/** What moved work to HTTP in one client (its last progress event's policy). */
export function decisionsOf(result: GetResult): string {
  const policy = result.lastProgress?.policy as { decisions?: { servable_to_http?: number; late_to_http?: number; choked_to_http?: number; yielded_to_peer_http?: number } } | undefined;
  const decisions = policy?.decisions;
  return `${decisions?.servable_to_http ?? '?'}/${decisions?.late_to_http ?? '?'}/${decisions?.choked_to_http ?? '?'}/${decisions?.yielded_to_peer_http ?? '?'}`;
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
  // When the extra copies (every copy but the first of a chunk) landed, in 5 s buckets.
  const extraAt = new Map<number, number>();
  for (const times of byChunk.values()) for (const atMs of [...times].sort((a, b) => a - b).slice(1)) extraAt.set(Math.floor(atMs / 5000), (extraAt.get(Math.floor(atMs / 5000)) ?? 0) + 1);
  const quantile = (q: number) => ((gapsMs[Math.floor(q * (gapsMs.length - 1))] ?? Number.NaN) / 1000).toFixed(1);
  const meets = results.map((result) => `${result.peerAtMs.length}@${((result.peerAtMs[0] ?? Number.NaN) / 1000).toFixed(1)}-${((result.peerAtMs[result.peerAtMs.length - 1] ?? Number.NaN) / 1000).toFixed(1)}s`);
  return `chunks by HTTP copies: ${[...histogram].sort((a, b) => a[0] - b[0]).map(([copies, chunks]) => `${copies}x ${chunks}`).join(', ')}; spread between copies p50 ${quantile(0.5)} s, p90 ${quantile(0.9)} s; extra copies landed at ${[...extraAt].sort((a, b) => a[0] - b[0]).map(([bucket, count]) => `${bucket * 5}s:${count}`).join(' ')}; peers met (count@first-last): ${meets.join(', ')}`;
}

/** Anything with the kernel's byte counters of a host's eth0 (a lab host). */
interface Counted {
  counters(): Promise<{ rxBytes: number; txBytes: number }>;
}

/**
 * What the links carried while a crowd ran: every `everyMs`, the origin's uplink and the
 * homes' uplinks together, in Mbit/s and as a share of their rates, read from the kernel's
 * counters. Where the mean completion is far from the links' bound, this shows whether the
 * uplinks sat idle (start-up, a slow phase) or were full. Call the result to stop and print.
 */
export function linkTimeline(origin: Counted, originBitsPerSecond: number, homes: Counted[], homeUpBitsPerSecond: number, everyMs = 2000): () => Promise<string> {
  const samples: Array<{ atMs: number; origin: number; homes: number }> = [];
  const startMs = Date.now();
  const read = async () => {
    const [first, ...rest] = await Promise.all([origin, ...homes].map((host) => host.counters()));
    samples.push({ atMs: Date.now() - startMs, origin: first!.txBytes, homes: rest.reduce((sum, counters) => sum + counters.txBytes, 0) });
  };
  let pending = read();
  const timer = setInterval(() => (pending = pending.then(read, read)), everyMs);
  return async () => {
    clearInterval(timer);
    await pending.catch(() => undefined);
    await read();
    const homesCapacity = homes.length * homeUpBitsPerSecond;
    const rows: string[] = [];
    for (let i = 1; i < samples.length; i++) {
      const seconds = (samples[i]!.atMs - samples[i - 1]!.atMs) / 1000;
      const originBits = ((samples[i]!.origin - samples[i - 1]!.origin) * 8) / seconds;
      const homesBits = ((samples[i]!.homes - samples[i - 1]!.homes) * 8) / seconds;
      rows.push(`${(samples[i]!.atMs / 1000).toFixed(0)}s ${(originBits / 1e6).toFixed(0)}/${((homesBits / 1e6)).toFixed(0)} (${((originBits / originBitsPerSecond) * 100).toFixed(0)}%/${((homesBits / homesCapacity) * 100).toFixed(0)}%)`);
    }
    return `links over time (origin/homes' uplinks Mbit/s, share of their rates): ${rows.join(', ')}`;
  };
}

/**
 * How fast each client met the crowd: distinct peers connected by 5, 10 and 20 s after its
 * start, and how many connections it lost before its end. Until two clients meet, neither sees
 * the other's haves or pf_loading, so both may fetch the same chunk from the origin.
 */
export function meshOf(results: GetResult[]): string {
  const rows = results.map((result) => {
    const by = (ms: number) => new Set(result.peerLog.filter((entry) => entry.isConnected && entry.atMs <= ms).map((entry) => entry.peerId)).size;
    const lost = result.peerLog.filter((entry) => !entry.isConnected && entry.atMs < result.wallMs - 16_000).length;
    return `${by(5000)}/${by(10_000)}/${by(20_000)} -${lost}`;
  });
  return `peers met by 5/10/20 s, -connections lost while downloading: ${rows.join(', ')}`;
}
