// Flash crowd: 8 `peerfill get` processes start together on a 256 MiB file with no seeder,
// the origin's egress capped; then 8 `--no-peers` clients under the same cap. Prints origin
// bytes ÷ file size (counted by a pass-through in front of the data plane: the minted URLs
// point at it through --public-url), mean completion time of each mode and their ratio, and
// each client's peers/HTTP split. WebRTC stays on this machine: as root the script makes its
// own network namespace, re-runs itself inside it and deletes it at the end.
//   node --import tsx bench/swarm/run.ts
//   PF_SWARM_CLIENTS (8)  PF_SWARM_SIZE_MIB (256)  PF_SWARM_EGRESS_MIBPS (32)  PF_SWARM_ROUNDS (2)
//   PF_SWARM_MODES (swarm,http)  PF_SWARM_FLOORS (webrtc,verifying)  PF_SWARM_ROUND_LIMIT_S (300)
//   PF_SWARM_CLIENT_NODE_ARGS  PF_SWARM_CLIENT_LOG
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { appendFileSync } from 'node:fs';
import { createServer, request as httpRequest, Agent, type Server } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MAX_MESSAGE_BYTES } from '../../client/peer/wire.ts';
import type { MeshResult } from './webrtc-mesh.ts';
import { CLI, MiB, freePort, loadNow, machineLine, median, sha256File, spread, startServe, writeTestFile } from '../client/procs.ts';

const NAMESPACE = 'pfbench-swarm';
const CLIENTS = Number(process.env.PF_SWARM_CLIENTS ?? 8);
const SIZE_BYTES = Number(process.env.PF_SWARM_SIZE_MIB ?? 256) * MiB;
const EGRESS_BYTES_PER_SECOND = Number(process.env.PF_SWARM_EGRESS_MIBPS ?? 32) * MiB;
const ROUNDS = Number(process.env.PF_SWARM_ROUNDS ?? 2);
const MODES = (process.env.PF_SWARM_MODES ?? 'swarm,http').split(',') as Array<'swarm' | 'http'>;
/** Which floors to measure first (PF_SWARM_FLOORS, '' for none: when comparing client changes). */
const FLOORS = (process.env.PF_SWARM_FLOORS ?? 'webrtc,verifying').split(',').filter(Boolean);
/** Extra node flags for the clients, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (PF_SWARM_CLIENT_NODE_ARGS). */
const CLIENT_NODE_ARGS = (process.env.PF_SWARM_CLIENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Where each client's other stdout lines go, e.g. V8's from `--trace-gc`: PREFIX-MODE-ROUND-CLIENT.log (PF_SWARM_CLIENT_LOG). */
const CLIENT_LOG = process.env.PF_SWARM_CLIENT_LOG;
const ROUND_LIMIT_MS = Number(process.env.PF_SWARM_ROUND_LIMIT_S ?? 300) * 1000;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function deleteNamespace(): void {
  try {
    ip('netns', 'delete', NAMESPACE);
  } catch {
    // not there
  }
}

/** Outside the namespace: make it, run this script inside, delete it whatever happens. */
async function runInNamespace(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error(`bench/swarm needs root: it runs WebRTC inside its own network namespace (${NAMESPACE}) so that no traffic leaves this machine. Run it as root.`);
    return 2;
  }
  deleteNamespace();
  ip('netns', 'add', NAMESPACE);
  try {
    const inNs = (...args: string[]) => ip('netns', 'exec', NAMESPACE, 'ip', ...args);
    inNs('link', 'set', 'lo', 'up');
    inNs('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    inNs('addr', 'add', '10.77.0.1/24', 'dev', 'v0');
    inNs('addr', 'add', '10.77.0.2/24', 'dev', 'v1');
    inNs('link', 'set', 'v0', 'up');
    inNs('link', 'set', 'v1', 'up');
    const child = spawn('ip', ['netns', 'exec', NAMESPACE, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, PF_SWARM_INSIDE: NAMESPACE },
    });
    process.once('SIGINT', () => child.kill('SIGINT'));
    process.once('SIGTERM', () => child.kill('SIGTERM'));
    return await new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  } finally {
    deleteNamespace();
  }
}

/** Everything this run started, so a signal or a time-out can stop it all. */
const liveChildren = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];

function track<T extends ChildProcess>(child: T): T {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

interface CountingProxy {
  url: string;
  bodyBytes(): number;
  requests(): number;
  close(): Promise<void>;
}

/** A pass-through in front of the data plane that counts the bytes the origin sends. */
async function startCountingProxy(upstream: URL): Promise<CountingProxy> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let bodyBytes = 0;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const upstreamReq = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host }, agent },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.on('data', (piece: Buffer) => (bodyBytes += piece.length));
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', () => res.destroy());
    res.on('close', () => upstreamReq.destroy());
    req.pipe(upstreamReq);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    bodyBytes: () => bodyBytes,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        agent.destroy();
      }),
  };
}

interface ClientResult {
  index: number;
  isOk: boolean;
  completionMs: number | undefined;
  fromPeersBytes: number;
  fromHttpBytes: number;
  httpReceivedBytes: number;
  uploadedBytes: number;
  maxPeers: number;
  detail: string;
}

interface RoundResult {
  mode: 'swarm' | 'http';
  round: number;
  originBytes: number;
  clients: ClientResult[];
  load: string;
  wallMs: number;
}

async function runRound(mode: 'swarm' | 'http', round: number, dirs: { filesDir: string; dataDir: string; outDir: string }, sha: string): Promise<RoundResult> {
  const port = await freePort();
  const serverUrl = `http://127.0.0.1:${port}`;
  const proxy = await startCountingProxy(new URL(serverUrl));
  const server = await startServe({ ...dirs, port, egressBytesPerSecond: EGRESS_BYTES_PER_SECOND, publicUrl: proxy.url });
  track(server.child);
  const children: ChildProcess[] = [];
  const load = loadNow();
  const started = performance.now();
  try {
    const { files } = (await (await fetch(`${server.url}/files`)).json()) as { files: Array<{ file_id: string }> };
    const fileId = files[0]!.file_id;
    const settled = Array.from({ length: CLIENTS }, (_, index) => {
      const out = join(dirs.outDir, `${mode}-${round}-${index}.bin`);
      const args = [CLI, 'get', `${server.url}/files/${fileId}`, '-o', out, '--json', ...(mode === 'http' ? ['--no-peers'] : ['--seed', '600'])];
      const child = track(spawn(process.execPath, [...CLIENT_NODE_ARGS, ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] }));
      children.push(child);
      const spawnedAt = performance.now();
      const result: ClientResult = { index, isOk: false, completionMs: undefined, fromPeersBytes: 0, fromHttpBytes: 0, httpReceivedBytes: 0, uploadedBytes: 0, maxPeers: 0, detail: '' };
      let stderr = '';
      child.stderr.on('data', (piece: Buffer) => (stderr = (stderr + piece.toString()).slice(-2000)));
      return new Promise<{ result: ClientResult; out: string }>((resolve) => {
        createInterface({ input: child.stdout }).on('line', (text) => {
          if (!text.startsWith('{')) {
            if (CLIENT_LOG) appendFileSync(`${CLIENT_LOG}-${mode}-${round}-${index}.log`, `${text}\n`);
            return;
          }
          const line = JSON.parse(text) as Record<string, number | string | null>;
          if (line.event === 'progress') {
            result.maxPeers = Math.max(result.maxPeers, Number(line.peers ?? 0));
            result.uploadedBytes = Number(line.uploaded_bytes ?? 0);
          } else if (line.event === 'done') {
            result.completionMs = performance.now() - spawnedAt;
            result.fromPeersBytes = Number(line.from_peers_bytes);
            result.fromHttpBytes = Number(line.from_http_bytes);
            result.httpReceivedBytes = Number(line.http_received_bytes);
            resolve({ result, out });
          } else if (line.event === 'error') {
            result.detail = `error ${String(line.code)}: ${String(line.message)}`;
          }
        });
        child.once('exit', (code) => {
          if (!result.detail && result.completionMs === undefined) result.detail = `exited ${code} before done; ${stderr.replace(/\s+/g, ' ').slice(-300)}`;
          resolve({ result, out });
        });
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ROUND_LIMIT_MS)));
    const all = Promise.all(settled);
    const outcome = await Promise.race([all, timedOut]);
    clearTimeout(timer);
    const wallMs = performance.now() - started;
    const originBytes = proxy.bodyBytes();
    // Seeders stay until every client is done; then everyone stops.
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    const finished = outcome === 'timeout' ? await Promise.race([all, new Promise<never[]>((r) => setTimeout(() => r([]), 15_000))]) : outcome;
    const clients: ClientResult[] = [];
    for (let index = 0; index < CLIENTS; index++) {
      const entry = finished.find((f) => f.result.index === index);
      if (!entry) {
        clients.push({ index, isOk: false, completionMs: undefined, fromPeersBytes: 0, fromHttpBytes: 0, httpReceivedBytes: 0, uploadedBytes: 0, maxPeers: 0, detail: `not done within ${ROUND_LIMIT_MS / 1000} s` });
        continue;
      }
      const got = entry.result.completionMs === undefined ? undefined : await sha256File(entry.out);
      entry.result.isOk = got === sha;
      if (!entry.result.isOk && !entry.result.detail) entry.result.detail = `sha256 ${got?.slice(0, 12) ?? 'missing'} (want ${sha.slice(0, 12)})`;
      clients.push(entry.result);
      await rm(entry.out, { force: true });
    }
    return { mode, round, originBytes, clients, load, wallMs };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await server.stop();
    await proxy.close();
  }
}

const fmtMiB = (bytes: number) => (bytes / MiB).toFixed(1);

/**
 * What WebRTC costs here (webrtc-mesh.ts): the swarm must move at least (clients - 1) file
 * copies between peers (the origin sends one at best). The same number of processes, each
 * with a data channel to every other and nothing of peerfill, move exactly that, first with
 * nothing else, then with the per-byte work of any client that checks and keeps what it gets
 * (SHA-256 per chunk, the write at its offset, reads for uploads, the whole-file SHA-256). The
 * mean time of the second is the least mean completion a verifying swarm can have here.
 */
function webrtcFloor(isVerifying: boolean): { seconds: number; summary: string } | undefined {
  const script = new URL('./webrtc-mesh.ts', import.meta.url).pathname;
  const mibPerProcess = ((CLIENTS - 1) * SIZE_BYTES) / CLIENTS / MiB;
  const messageKiB = MAX_MESSAGE_BYTES / 1024;
  const what = isVerifying ? 'plus SHA-256 per chunk, writes, reads for uploads and the whole-file SHA-256' : 'nothing of peerfill';
  let result: MeshResult;
  try {
    const args = ['--import', 'tsx', script, String(CLIENTS), String(mibPerProcess), String(messageKiB), ...(isVerifying ? ['verify'] : [])];
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', timeout: 300_000 });
    result = JSON.parse(out.trim().split('\n').pop()!) as MeshResult;
  } catch (error) {
    const stdout = (error as { stdout?: string }).stdout?.trim().split('\n').pop();
    console.log(`floor (${what}): WebRTC mesh measurement FAILED: ${stdout ?? (error as Error).message.split('\n')[0]}`);
    return undefined;
  }
  const seconds = result.doneSeconds.reduce((a, b) => a + b, 0) / result.doneSeconds.length;
  const totalMiB = result.mibPerProcess * result.processes;
  console.log(
    `floor: ${result.processes} processes, each with a data channel to every other (simple-peer + @roamhq/wrtc, ${messageKiB} KiB messages, ${what}), moving the swarm's ${totalMiB.toFixed(0)} MiB between peers: mean ${seconds.toFixed(1)} s (max ${Math.max(...result.doneSeconds).toFixed(1)}), ${((result.cpuSeconds * 1000) / totalMiB).toFixed(1)} CPU-ms per MiB, on ${cpus().length} cores`,
  );
  return { seconds, summary: isVerifying ? "WebRTC plus a verifying client's per-byte work" : 'WebRTC alone' };
}

function printRound(r: RoundResult): void {
  const times = r.clients.filter((c) => c.isOk).map((c) => c.completionMs! / 1000);
  const mean = times.length > 0 ? times.reduce((a, b) => a + b, 0) / times.length : NaN;
  const failures = r.clients.filter((c) => !c.isOk).length;
  console.log(
    `\nround ${r.round} ${r.mode.padEnd(5)}: origin sent ${fmtMiB(r.originBytes)} MiB = ${(r.originBytes / SIZE_BYTES).toFixed(2)}x the file; mean completion ${mean.toFixed(1)} s (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}); ${failures === 0 ? 'all ' + CLIENTS + ' ok' : `${failures} FAILED`}; load ${r.load} at start, ${loadNow()} at end`,
  );
  for (const c of r.clients) {
    console.log(
      `  client ${c.index}: ${c.isOk ? 'ok    ' : 'FAILED'} ${c.completionMs === undefined ? '     -' : (c.completionMs / 1000).toFixed(1).padStart(6)} s  peers ${fmtMiB(c.fromPeersBytes).padStart(6)} MiB  http ${fmtMiB(c.fromHttpBytes).padStart(6)} MiB (received ${fmtMiB(c.httpReceivedBytes).padStart(6)})  uploaded ${fmtMiB(c.uploadedBytes).padStart(6)} MiB  max peers ${c.maxPeers}${c.detail ? `  ${c.detail}` : ''}`,
    );
  }
}

async function inside(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pf-bench-swarm-'));
  const dirs = { filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), outDir: join(dir, 'out') };
  await mkdir(dirs.filesDir);
  await mkdir(dirs.outDir);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  try {
    console.log(
      `bench/swarm: ${CLIENTS} \`peerfill get\` processes, ${SIZE_BYTES / MiB} MiB file, no seeder at the start, origin egress capped at ${EGRESS_BYTES_PER_SECOND / MiB} MiB/s (--egress-limit ${EGRESS_BYTES_PER_SECOND}); namespace ${process.env.PF_SWARM_INSIDE}; ${ROUNDS} rounds of ${MODES.join(' + ')}; ${machineLine()}`,
    );
    console.log(`floor: one copy through the cap takes ${(SIZE_BYTES / EGRESS_BYTES_PER_SECOND).toFixed(1)} s; ${CLIENTS} HTTP-only copies ${((CLIENTS * SIZE_BYTES) / EGRESS_BYTES_PER_SECOND).toFixed(1)} s`);
    const floors = [false, true].filter((isVerifying) => FLOORS.includes(isVerifying ? 'verifying' : 'webrtc')).map(webrtcFloor);
    const sha = await writeTestFile(join(dirs.filesDir, 'crowd.bin'), SIZE_BYTES);
    const results: RoundResult[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of MODES) {
        const result = await runRound(mode, round, dirs, sha);
        results.push(result);
        printRound(result);
      }
    }
    console.log(`\nsummary over ${ROUNDS} rounds (median, spread min..max):`);
    const meanOf = (r: RoundResult) => {
      const ok = r.clients.filter((c) => c.isOk);
      return ok.length === CLIENTS ? ok.reduce((a, c) => a + c.completionMs!, 0) / ok.length / 1000 : NaN;
    };
    const byMode = (mode: 'swarm' | 'http') => results.filter((r) => r.mode === mode);
    for (const mode of MODES) {
      const rounds = byMode(mode);
      const ratios = rounds.map((r) => r.originBytes / SIZE_BYTES);
      const means = rounds.map(meanOf).filter((v) => !Number.isNaN(v));
      const failed = rounds.filter((r) => Number.isNaN(meanOf(r))).length;
      console.log(
        `${mode.padEnd(5)}: origin bytes / file ${median(ratios).toFixed(2)} (${spread(ratios, (v) => v.toFixed(2))}); mean completion ${means.length ? median(means).toFixed(1) : '-'} s (${spread(means, (v) => v.toFixed(1))})${failed ? `; ${failed} round(s) with FAILED clients` : ''}`,
      );
    }
    const swarmMeans = byMode('swarm').map(meanOf).filter((v) => !Number.isNaN(v));
    const httpMeans = byMode('http').map(meanOf).filter((v) => !Number.isNaN(v));
    for (const floor of floors) {
      if (!floor || !httpMeans.length) continue;
      const ratio = floor.seconds / median(httpMeans);
      console.log(
        `floor vs target: ${floor.seconds.toFixed(1)} s of ${floor.summary} (mean) = ${ratio.toFixed(2)}x HTTP-only's mean completion (target <= 0.35x; ${ratio > 0.35 ? 'below what this machine can do' : 'within reach'})${swarmMeans.length ? `; the swarm's mean at ${(median(swarmMeans) / floor.seconds).toFixed(2)}x this floor` : ''}`,
      );
    }
    const swarmRatios = byMode('swarm').map((r) => r.originBytes / SIZE_BYTES);
    if (swarmMeans.length && httpMeans.length) {
      const timeRatio = median(swarmMeans) / median(httpMeans);
      console.log(`targets: origin bytes / file ${median(swarmRatios).toFixed(2)} (target <= 1.2: ${Math.max(...swarmRatios) <= 1.2 ? 'met in every round' : median(swarmRatios) <= 1.2 ? 'met at the median' : 'NOT met'}); mean completion ${timeRatio.toFixed(2)}x HTTP-only (target <= 0.35: ${timeRatio <= 0.35 ? 'met' : 'NOT met'})`);
    }
    console.log(`load average at the end: ${machineLine().replace(/^.*load average /, '')}`);
    if (results.some((r) => r.clients.some((c) => !c.isOk))) process.exitCode = 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.env.PF_SWARM_INSIDE) {
  const stop = (signal: string) => {
    console.error(`bench/swarm: ${signal}: stopping ${liveChildren.size} processes`);
    for (const child of liveChildren) child.kill('SIGKILL');
    void Promise.allSettled(cleanups.map((cleanup) => cleanup())).finally(() => process.exit(130));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  await inside();
} else {
  process.exitCode = await runInNamespace();
}
