// `peerfill serve` vs nginx on one 1 GiB file, loaded by wrk in its own process:
//   node --import tsx bench/origin/run.ts
// Both servers run at once on loopback; rounds interleave (nginx, peerfill, nginx, ...) on
// 1 MiB and 16 KiB ranges. nginx is also loaded with one wrk thread, so that the figures
// show whether the generator limits them. Prints requests/s, MiB/s, wrk's latency p50/p99,
// CPU-seconds of each server and of wrk, the load average, and manifest build vs sha256sum.
// Bounded: PF_BENCH_ROUNDS x PF_BENCH_SECONDS per contender. Exits 1 on any failed answer.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { FileListSchema, createCodec, parseSigningKeys, signedPath } from '../../protocol/index.ts';
import { createOrigin } from '../../origin/index.ts';
import { UrlSigner } from '../../origin/signing/signer.ts';
import { freePort } from '../../test/support/net.ts';
import { treeCpuSeconds } from './proc-cpu.ts';
import { checkRange, startNginx, startPeerfillServe, type RunningServer } from './servers.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const run = promisify(execFile);
const FILE_SIZE = 1024 ** 3;
const CONNECTIONS = 16;
const SECONDS = Number(process.env.PF_BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.PF_BENCH_ROUNDS ?? 3);
const NGINX_WORKERS = Number(process.env.PF_BENCH_NGINX_WORKERS ?? 2);
const SERVE_WORKERS = Number(process.env.PF_BENCH_SERVE_WORKERS ?? 1);
const KEYS = 'bench:bench-secret-0123456789abcdef';
const MiB = 1024 * 1024;

interface Contender {
  label: string;
  server: RunningServer;
  pathAndQuery: string;
  threads: number;
}

interface Sample extends WrkResult {
  serverCpuSeconds: number;
  loadAverage: number;
}

async function writeBigFile(path: string): Promise<void> {
  const block = randomBytes(MiB);
  const file = await open(path, 'w');
  try {
    for (let i = 0; i < FILE_SIZE / block.length; i++) {
      block.writeUInt32BE(i, 0);
      await file.write(block);
    }
  } finally {
    await file.close();
  }
}

async function timeMs(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

async function measure(contender: Contender, rangeBytes: number, durationSeconds: number): Promise<Sample> {
  const cpuBefore = await treeCpuSeconds(contender.server.pid);
  const result = await runWrk({ baseUrl: contender.server.baseUrl, pathAndQuery: contender.pathAndQuery, rangeBytes, fileSizeBytes: FILE_SIZE, threads: contender.threads, connections: CONNECTIONS, durationSeconds });
  const serverCpuSeconds = (await treeCpuSeconds(contender.server.pid)) - cpuBefore;
  return { ...result, serverCpuSeconds, loadAverage: loadavg()[0]! };
}

const rps = (sample: Sample) => sample.requests / sample.elapsedSeconds;
const mibps = (sample: Sample) => sample.bytes / MiB / sample.elapsedSeconds;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const fixed = (value: number, digits = 0) => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const sizeLabel = (bytes: number) => (bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / 1024} KiB`);

function printSample(round: number, rangeBytes: number, label: string, sample: Sample): void {
  const cells = [
    `round ${round}`.padEnd(8),
    sizeLabel(rangeBytes).padStart(7),
    label.padEnd(22),
    `${fixed(rps(sample))} req/s`.padStart(14),
    `${fixed(mibps(sample))} MiB/s`.padStart(12),
    `p50 ${fixed(sample.latencyMs.p50, 2)} ms`.padStart(14),
    `p99 ${fixed(sample.latencyMs.p99, 2)} ms`.padStart(14),
    `server ${fixed(sample.serverCpuSeconds, 2)} CPU-s`.padStart(19),
    `wrk ${fixed(sample.wrkCpuSeconds, 2)} CPU-s`.padStart(16),
    `load ${fixed(sample.loadAverage, 2)}`,
  ];
  console.log(cells.join(' '));
  for (const failure of sample.failures) console.log(`  !! ${label}, ${sizeLabel(rangeBytes)} ranges: ${failure}`);
}

const row = (label: string, nginx: string, peerfill: string, ratio: string) => console.log(`${label.padEnd(40)}${nginx.padStart(16)}${peerfill.padStart(16)}${ratio.padStart(9)}`);

function printSummary(rangeBytes: number, nginx: Sample[], peerfill: Sample[], nginxOneThread: Sample[]): void {
  const both = (label: string, of: (sample: Sample) => number, unit: string, digits = 0) => {
    const n = median(nginx.map(of));
    const p = median(peerfill.map(of));
    row(`${sizeLabel(rangeBytes)} ${label}`, `${fixed(n, digits)} ${unit}`, `${fixed(p, digits)} ${unit}`, `${(p / n).toFixed(2)}x`);
  };
  both('requests/s', rps, 'req/s');
  both('throughput', mibps, 'MiB/s');
  both('latency p50 (wrk)', (sample) => sample.latencyMs.p50, 'ms', 2);
  both('latency p99 (wrk)', (sample) => sample.latencyMs.p99, 'ms', 2);
  both('server CPU-s per run', (sample) => sample.serverCpuSeconds, 's', 2);
  both('server CPU-us per request', (sample) => (sample.serverCpuSeconds * 1e6) / sample.requests, 'us', 1);
  both('wrk CPU-s per run', (sample) => sample.wrkCpuSeconds, 's', 2);
  const one = median(nginxOneThread.map(rps));
  const two = median(nginx.map(rps));
  console.log(`  generator check, ${sizeLabel(rangeBytes)}: nginx with wrk -t1 ${fixed(one)} req/s (wrk ${fixed(median(nginxOneThread.map((s) => s.wrkCpuSeconds / s.elapsedSeconds)), 2)} cores), with -t2 ${fixed(two)} req/s (wrk ${fixed(median(nginx.map((s) => s.wrkCpuSeconds / s.elapsedSeconds)), 2)} cores): -t2/-t1 = ${(two / one).toFixed(2)}x`);
}

async function main(): Promise<number> {
  // `nginx -v` writes its version to stderr.
  const { stderr: nginxVersion } = await run('/usr/sbin/nginx', ['-v']).catch(() => ({ stderr: '' }));
  const { stdout: wrkVersion } = await run('/usr/bin/wrk', ['-v']).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  const cpu = cpus();
  console.log(`machine: ${cpu.length} cores (${cpu[0]?.model ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, node ${process.version}, ${nginxVersion.trim() || 'nginx'}, ${wrkVersion.split('\n')[0]?.trim() || 'wrk'}`);
  console.log(`setup: one ${FILE_SIZE / 1024 ** 3} GiB file in the page cache; peerfill serve ${SERVE_WORKERS > 1 ? `--workers ${SERVE_WORKERS}` : '(one process)'}; nginx ${NGINX_WORKERS} workers, sendfile on; wrk in its own process, ${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} interleaved rounds; all on the same cores`);
  const work = await mkdtemp(join(tmpdir(), 'pf-bench-origin-'));
  const servers: RunningServer[] = [];
  let failures = 0;
  try {
    const files = join(work, 'files');
    await mkdir(files, { recursive: true });
    const bigPath = join(files, 'big.bin');
    await writeBigFile(bigPath);
    await run('sha256sum', [bigPath]); // warm the page cache for both contenders

    // Manifest build (fresh cache each time) vs sha256sum; best of two.
    const shaMs = Math.min(await timeMs(() => run('sha256sum', [bigPath])), await timeMs(() => run('sha256sum', [bigPath])));
    const keys = parseSigningKeys(KEYS);
    if (!keys.ok) throw new Error('bad keys');
    const buildMs: number[] = [];
    for (let i = 0; i < 2; i++) {
      const dataDir = join(work, `data${i}`);
      buildMs.push(await timeMs(async () => (await createOrigin({ filesDir: files, dataDir, publicUrl: 'http://x', urlTtlSeconds: 60, signingKeys: keys.keys }, { logger: pino({ level: 'warn' }) })).close()));
    }

    const nginx = await startNginx({ root: files, dir: join(work, 'nginx'), port: await freePort(), workers: NGINX_WORKERS });
    servers.push(nginx);
    // data1 holds the manifest built above: serve starts without hashing the file again.
    const peerfill = await startPeerfillServe({ filesDir: files, dataDir: join(work, 'data1'), port: await freePort(), dataPort: await freePort(), signingKeys: KEYS, workers: SERVE_WORKERS });
    servers.push(peerfill);
    const listing = createCodec(FileListSchema).parse(await (await fetch(`${peerfill.controlUrl}/files`)).json());
    const fileId = listing.files.find((file) => file.name === 'big.bin')!.file_id;
    const { pathAndQuery } = new UrlSigner(keys.keys).signedPathAndQuery(signedPath(fileId, 'big.bin'), Math.floor(Date.now() / 1000), 3600);

    // Before any load: both answer the same Range with 206, the exact Content-Range and the same bytes.
    for (const [start, length] of [[0, 16 * 1024], [FILE_SIZE - MiB, MiB], [123 * MiB, MiB]] as const) {
      const fromNginx = await checkRange(`${nginx.baseUrl}/big.bin`, start, length, FILE_SIZE);
      const fromPeerfill = await checkRange(`${peerfill.baseUrl}${pathAndQuery}`, start, length, FILE_SIZE);
      const problems = [fromNginx.error && `nginx: ${fromNginx.error}`, fromPeerfill.error && `peerfill: ${fromPeerfill.error}`, !fromNginx.body.equals(fromPeerfill.body) && `bytes ${start}+${length} differ`].filter(Boolean);
      if (problems.length > 0) throw new Error(`range check failed: ${problems.join('; ')}`);
    }

    const nginxTwo: Contender = { label: 'nginx, wrk -t2', server: nginx, pathAndQuery: '/big.bin', threads: 2 };
    const nginxOne: Contender = { ...nginxTwo, label: 'nginx, wrk -t1', threads: 1 };
    const peerfillTwo: Contender = { label: 'peerfill, wrk -t2', server: peerfill, pathAndQuery, threads: 2 };
    const summaries: (() => void)[] = [];
    console.log('');
    for (const rangeBytes of [MiB, 16 * 1024]) {
      for (const contender of [nginxTwo, peerfillTwo]) await measure(contender, rangeBytes, 1); // warm-up: JIT, connections, caches
      const samples = new Map<Contender, Sample[]>([[nginxTwo, []], [peerfillTwo, []], [nginxOne, []]]);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const contender of [nginxTwo, peerfillTwo, nginxOne]) {
          const sample = await measure(contender, rangeBytes, SECONDS);
          failures += sample.failures.length;
          samples.get(contender)!.push(sample);
          printSample(round, rangeBytes, contender.label, sample);
        }
      }
      summaries.push(() => printSummary(rangeBytes, samples.get(nginxTwo)!, samples.get(peerfillTwo)!, samples.get(nginxOne)!));
    }

    console.log('');
    row(`medians of ${ROUNDS} rounds, wrk -t2 -c${CONNECTIONS}`, `nginx (${NGINX_WORKERS}w)`, `peerfill (${SERVE_WORKERS}w)`, 'ratio');
    for (const summary of summaries) summary();
    const bestBuild = Math.min(...buildMs);
    row('manifest build of 1 GiB vs sha256sum', `${(shaMs / 1000).toFixed(2)} s`, `${(bestBuild / 1000).toFixed(2)} s`, `${(bestBuild / shaMs).toFixed(2)}x`);
    console.log(`latency is wrk's: from writing a request to reading its whole answer. Targets: 1 MiB >= 0.7x nginx, 16 KiB >= 0.4x nginx (same worker count), manifest <= 1.3x sha256sum ("nginx" column holds sha256sum there)`);
    console.log(`failed answers or socket errors: ${failures}`);
  } finally {
    for (const server of servers.reverse()) await server.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
  return failures > 0 ? 1 : 0;
}

process.exitCode = await main();
