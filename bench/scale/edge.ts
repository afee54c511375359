/**
 * Edge capacity for docs/scale.md: the nginx edge (deploy/nginx: njs HMAC check on every
 * request, 1 MiB slice cache) serving a warm file, side by side with Debian's nginx serving
 * the same file statically (sendfile), in the same run. Also prints what the origin sent.
 *
 *   node --import tsx bench/scale/edge.ts [--size-mib 256] [--seconds 5]
 *
 * Bounded: fixed duration and request caps; every answer is checked (206, exact
 * Content-Range and length) and failures are printed, never hidden.
 */
import { chmod } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { percentile, runLoad, type LoadResult } from '../origin/load.ts';
import { startNginx } from '../../test/origin/fixtures.ts';
import { startStack, testKeys } from '../../test/deploy/fixtures/stack.ts';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '256' }, seconds: { type: 'string', default: '5' } } });
const SIZE_BYTES = Number(values['size-mib']) * 1024 * 1024;
const DURATION_MS = Number(values.seconds) * 1000;
const MiB = 1024 * 1024;

function row(label: string, reference: string, ours: string, ratio: number): string {
  return `${label.padEnd(40)}${reference.padStart(14)}${ours.padStart(16)}${(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a').padStart(10)}`;
}

function mbPerSecond(result: LoadResult): number {
  return result.bytes / 1e6 / (result.elapsedMs / 1000);
}

function requestsPerSecond(result: LoadResult): number {
  return result.requests / (result.elapsedMs / 1000);
}

async function main(): Promise<void> {
  const keys = testKeys();
  const stack = await startStack({ originKeys: keys, edgeEnvKeys: keys, files: [{ name: 'big.bin', sizeBytes: SIZE_BYTES }] });
  const filesDir = dirname(stack.files.get('big.bin')!.localPath);
  // nginx workers run unprivileged: let them reach the file through the temp parent.
  await chmod(dirname(filesDir), 0o755);
  const reference = await startNginx(filesDir);
  try {
    const file = stack.files.get('big.bin')!;
    const edgeUrl = `${stack.edge.url}${await stack.sign(file.path, { ttlSeconds: 3600 })}`;
    const staticUrl = `${reference.baseUrl}/big.bin`;

    // Warm the edge: every slice once, so the load below measures cache hits.
    let warmFailures = 0;
    for (let start = 0; start < SIZE_BYTES; start += MiB) {
      const response = await fetch(edgeUrl, { headers: { range: `bytes=${start}-${start + MiB - 1}` } });
      const body = await response.arrayBuffer();
      if (response.status !== 206 || body.byteLength !== MiB) warmFailures++;
    }
    const originAfterWarm = stack.proxy.bodyBytes();

    const runs: [string, LoadResult, LoadResult][] = [];
    for (const [label, rangeBytes] of [['1 MiB ranges, 16 conns', MiB], ['16 KiB ranges, 16 conns', 16 * 1024]] as const) {
      const load = { connections: 16, rangeBytes, fileSizeBytes: SIZE_BYTES, durationMs: DURATION_MS, maxRequests: 2_000_000 };
      const ref = await runLoad({ ...load, url: staticUrl });
      const edge = await runLoad({ ...load, url: edgeUrl });
      runs.push([label, ref, edge]);
    }
    const originDuringLoad = stack.proxy.bodyBytes() - originAfterWarm;

    const lines = [
      `edge capacity (bench/scale/edge.ts): ${SIZE_BYTES / MiB} MiB file, warm cache, ${DURATION_MS / 1000} s per measurement`,
      `machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}; nginx 2 workers both sides; load generator in this process`,
      '',
      row('', 'nginx static', 'peerfill edge', Number.NaN).replace('n/a', 'ratio'),
    ];
    for (const [label, ref, edge] of runs) {
      lines.push(row(`${label}: MB/s`, mbPerSecond(ref).toFixed(0), mbPerSecond(edge).toFixed(0), mbPerSecond(edge) / mbPerSecond(ref)));
      lines.push(row(`${label}: requests/s`, requestsPerSecond(ref).toFixed(0), requestsPerSecond(edge).toFixed(0), requestsPerSecond(edge) / requestsPerSecond(ref)));
      lines.push(row(`${label}: first byte p99 ms`, percentile(ref.firstByteMs, 99).toFixed(2), percentile(edge.firstByteMs, 99).toFixed(2), percentile(edge.firstByteMs, 99) / percentile(ref.firstByteMs, 99)));
    }
    lines.push('');
    lines.push(`origin bytes: warm-up ${(originAfterWarm / SIZE_BYTES).toFixed(3)}x the file (${SIZE_BYTES / MiB} sequential 1 MiB reads); during the load ${originDuringLoad} bytes`);
    const failures = warmFailures + runs.flatMap(([, ref, edge]) => [ref, edge]).reduce((sum, result) => sum + result.errors, 0);
    lines.push(`failed answers: ${failures}${failures > 0 ? ` (${runs.flatMap(([, ref, edge]) => [ref, edge]).flatMap((result) => result.errorSamples).slice(0, 3).join('; ')})` : ''}`);
    console.log(lines.join('\n'));
    if (failures > 0) process.exitCode = 1;
  } finally {
    await reference.stop();
    await stack.stop();
  }
}

await main();
