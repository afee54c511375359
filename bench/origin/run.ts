// Origin vs nginx on one 1 GiB file: `node --import tsx bench/origin/run.ts`
// Prints (a) 1 MiB-range throughput over 16 connections, (b) 16 KiB-range requests/s,
// (c) first-byte latency under (b), (d) manifest build time vs sha256sum, with ratios.
// Every run is bounded by time and request count; failed answers are counted and printed.
import { execFile, spawn } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { open, mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { FileListSchema, createCodec, parseSigningKeys, signedPath } from '../../protocol/index.ts';
import { createOrigin } from '../../origin/index.ts';
import { UrlSigner } from '../../origin/signer.ts';
import { freePort } from '../../test/support/net.ts';
import { percentile, runLoad, type LoadResult } from './load.ts';

const run = promisify(execFile);
const FILE_SIZE = 1024 ** 3;
const CONNECTIONS = 16;
const DURATION_MS = Number(process.env.PF_BENCH_SECONDS ?? 8) * 1000;
const WORKERS = Number(process.env.PF_BENCH_WORKERS ?? 2);
const KEYS = 'bench:bench-secret-0123456789abcdef';
const NGINX = '/usr/sbin/nginx';

async function writeBigFile(path: string): Promise<void> {
  const block = randomBytes(1024 * 1024);
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

async function startNginx(root: string, dir: string, port: number): Promise<() => Promise<void>> {
  // mkdtemp makes 0700 directories; nginx workers run unprivileged when we are root.
  await chmod(join(root, '..'), 0o755);
  await chmod(root, 0o755);
  const conf = `worker_processes ${WORKERS};
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
  await waitForHttp(`http://127.0.0.1:${port}/`);
  return async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
}

async function waitForHttp(url: string): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    try {
      await fetch(url, { method: 'HEAD' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  throw new Error(`${url} did not come up`);
}

async function startOriginCluster(env: Record<string, string>): Promise<() => Promise<void>> {
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./server.ts', import.meta.url)), execArgv: ['--import', 'tsx'] });
  const workers: Worker[] = [];
  const listening: Promise<unknown>[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork(env);
    workers.push(worker);
    listening.push(
      new Promise((resolve, reject) => {
        worker.once('listening', resolve);
        worker.once('exit', (code) => reject(new Error(`origin worker exited with ${code}`)));
      }),
    );
  }
  await Promise.all(listening);
  return async () => {
    await Promise.all(
      workers.map((worker) => {
        if (worker.isDead()) return Promise.resolve();
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.kill('SIGTERM');
        return exited;
      }),
    );
  };
}

const mb = (bytesPerSecond: number) => `${(bytesPerSecond / 1e6).toFixed(0)} MB/s`;
const row = (label: string, nginx: string, origin: string, ratio: string) => console.log(`${label.padEnd(34)}${nginx.padStart(16)}${origin.padStart(16)}${ratio.padStart(10)}`);

function reportErrors(label: string, result: LoadResult): void {
  if (result.errors > 0) console.log(`  !! ${label}: ${result.errors} failed answers, e.g. ${result.errorSamples.join(' | ')}`);
}

async function main(): Promise<void> {
  // `nginx -v` writes its version to stderr.
  const { stderr: nginxVersion } = await run(NGINX, ['-v']).catch(() => ({ stderr: '' }));
  const cpu = cpus();
  console.log(`machine: ${cpu.length} cores (${cpu[0]?.model ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, node ${process.version}, ${nginxVersion.trim() || 'nginx'}`);
  console.log(`setup: one ${FILE_SIZE / 1024 ** 3} GiB file; origin = ${WORKERS} node:cluster workers; nginx = ${WORKERS} workers, sendfile on; load generator in this process (same cores)`);
  const work = await mkdtemp(join(tmpdir(), 'pf-bench-origin-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const files = join(work, 'files');
    await run('mkdir', ['-p', files, join(work, 'nginx')]);
    const bigPath = join(files, 'big.bin');
    await writeBigFile(bigPath);
    await run('sha256sum', [bigPath]); // warm the page cache for both contenders

    // (d) manifest build (fresh cache each time) vs sha256sum; best of two.
    const shaMs = Math.min(await timeMs(() => run('sha256sum', [bigPath])), await timeMs(() => run('sha256sum', [bigPath])));
    const logger = pino({ level: 'warn' });
    const keys = parseSigningKeys(KEYS);
    if (!keys.ok) throw new Error('bad keys');
    const buildMs: number[] = [];
    for (let i = 0; i < 2; i++) {
      const dataDir = join(work, `data${i}`);
      buildMs.push(await timeMs(async () => (await createOrigin({ filesDir: files, dataDir, publicUrl: 'http://x', urlTtlSeconds: 60, signingKeys: keys.keys }, { logger })).close()));
    }

    const nginxPort = await freePort();
    stops.push(await startNginx(files, join(work, 'nginx'), nginxPort));
    const originPort = await freePort();
    stops.push(await startOriginCluster({ PF_BENCH_FILES: files, PF_BENCH_DATA: join(work, 'data1'), PF_BENCH_PORT: String(originPort), PF_BENCH_KEYS: KEYS }));
    const listing = createCodec(FileListSchema).parse(await (await fetch(`http://127.0.0.1:${originPort}/files`)).json());
    const fileId = listing.files.find((file) => file.name === 'big.bin')!.file_id;
    const path = signedPath(fileId, 'big.bin');
    const { pathAndQuery } = new UrlSigner(keys.keys).signedPathAndQuery(path, Math.floor(Date.now() / 1000), 3600);
    const urls = { nginx: `http://127.0.0.1:${nginxPort}/big.bin`, origin: `http://127.0.0.1:${originPort}${pathAndQuery}` };

    const measure = async (rangeBytes: number) => {
      const one = async (name: 'nginx' | 'origin') => {
        await runLoad({ url: urls[name], connections: CONNECTIONS, rangeBytes, fileSizeBytes: FILE_SIZE, durationMs: 1000, maxRequests: 200_000 }); // warm-up
        const result = await runLoad({ url: urls[name], connections: CONNECTIONS, rangeBytes, fileSizeBytes: FILE_SIZE, durationMs: DURATION_MS, maxRequests: 2_000_000 });
        reportErrors(`${name} ${rangeBytes}-byte ranges`, result);
        return result;
      };
      return { nginx: await one('nginx'), origin: await one('origin') };
    };
    const big = await measure(1024 * 1024);
    const small = await measure(16 * 1024);

    console.log('');
    row('', 'nginx', 'origin', 'ratio');
    const throughput = (result: LoadResult) => (result.bytes / result.elapsedMs) * 1000;
    row('(a) 1 MiB ranges, 16 conns', mb(throughput(big.nginx)), mb(throughput(big.origin)), `${(throughput(big.origin) / throughput(big.nginx)).toFixed(2)}x`);
    const rps = (result: LoadResult) => (result.requests / result.elapsedMs) * 1000;
    row('(b) 16 KiB ranges, 16 conns', `${rps(small.nginx).toFixed(0)} req/s`, `${rps(small.origin).toFixed(0)} req/s`, `${(rps(small.origin) / rps(small.nginx)).toFixed(2)}x`);
    for (const p of [50, 99]) {
      const n = percentile(small.nginx.firstByteMs, p);
      const o = percentile(small.origin.firstByteMs, p);
      row(`(c) first byte p${p} under (b)`, `${n.toFixed(2)} ms`, `${o.toFixed(2)} ms`, `${(o / n).toFixed(2)}x`);
    }
    const bestBuild = Math.min(...buildMs);
    row('(d) manifest build vs sha256sum', `${(shaMs / 1000).toFixed(2)} s`, `${(bestBuild / 1000).toFixed(2)} s`, `${(bestBuild / shaMs).toFixed(2)}x`);
    console.log(`requests: (a) nginx ${big.nginx.requests} / origin ${big.origin.requests}; (b) nginx ${small.nginx.requests} / origin ${small.origin.requests}; failed answers: ${big.nginx.errors + big.origin.errors + small.nginx.errors + small.origin.errors}`);
    console.log(`targets: (a) >= 0.7x nginx, (b) >= 0.5x nginx, (d) <= 1.3x sha256sum (column "nginx" holds sha256sum for (d))`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
