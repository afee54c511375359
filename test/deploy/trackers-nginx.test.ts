import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, killProcess, runCli, type CliLine, type CliProcess } from '../client/fixtures/cli.ts';
import { testBytes } from '../client/fixtures/fake-server.ts';
import { RedisServer } from '../tracker/fixtures/redis-server.ts';
import { RedisCluster, clusterSkipReason } from '../tracker/fixtures/redis-cluster.ts';
import { freePort } from '../support/net.ts';
import { startBalancer, type RunningBalancer } from './fixtures/nginx-trackers.ts';

/**
 * Four `peerfill tracker` processes over one Redis (a server, then a Redis Cluster), behind Debian's nginx as the WebSocket
 * load balancer (deploy/nginx/peerfill-trackers.conf), with `peerfill serve` as the origin
 * and real `peerfill seed` / `peerfill get` peers that know only nginx's address.
 */
const MiB = 1024 * 1024;
const FILE_BYTES = 24 * MiB;
const TRACKERS = 4;
const bytes = testBytes(FILE_BYTES, 77);
const sha256 = createHash('sha256').update(bytes).digest('hex');
const keys = `k1:${randomBytes(24).toString('hex')}`;

interface Daemon {
  child: ChildProcessWithoutNullStreams;
  out(): string;
  port: number;
}

let dir: string;
/** The shared store the trackers get as `--redis`. */
interface Backend {
  url: string;
  stop(): Promise<void>;
}
let redis: Backend | undefined;
let origin: Daemon;
let trackers: Daemon[] = [];
let balancer: RunningBalancer;
let fileId: string;
const peers: CliProcess[] = [];

function daemon(args: string[], port: number): Daemon {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PEERFILL_SIGNING_KEYS: keys, PEERFILL_DATA_DIR: join(dir, `data-${port}`), PEERFILL_LOG_LEVEL: 'warn' },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { child, out: () => out, port };
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function stopDaemon(process: Daemon | undefined): Promise<void> {
  const child = process?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** One tracker process's own figures, read from its /metrics (loopback, not through nginx). */
async function trackerMetrics(tracker: Daemon): Promise<{ peers: number; relayedViaPubsub: number }> {
  const text = await (await fetch(`http://127.0.0.1:${tracker.port}/metrics`)).text();
  const value = (pattern: RegExp) => {
    let sum = 0;
    for (const match of text.matchAll(pattern)) sum += Number(match[1]);
    return sum;
  };
  return {
    peers: value(/^peerfill_tracker_connected_peers (\d+)/gm),
    relayedViaPubsub: value(/^peerfill_tracker_relayed_signals_total\{[^}]*via="pubsub"[^}]*\} (\d+)/gm),
  };
}

const run = (args: string[]): CliProcess => {
  const proc = runCli(args, { cwd: dir });
  peers.push(proc);
  return proc;
};

function leecher(name: string): CliProcess {
  // A speed floor well under the peers' rate: HTTP fills only what holds it, peers give the rest.
  return run(['get', `${balancer.url}/${fileId}`, '-o', join(dir, `${name}.bin`), '--json', '--speed-floor', '16mbit', '--seed', '600']);
}

async function checkDone(proc: CliProcess, name: string): Promise<CliLine> {
  const done = await proc.waitForLine((line) => line.event === 'done', `${name} to finish`, 120_000);
  expect(done).toMatchObject({ sha256, total_bytes: FILE_BYTES });
  expect(createHash('sha256').update(await readFile(join(dir, `${name}.bin`))).digest('hex')).toBe(sha256);
  return done;
}

if (clusterSkipReason) console.log(`skipping the trackers-behind-nginx test on Redis Cluster: ${clusterSkipReason}`);

const backends: { name: string; startBackend: () => Promise<Backend> }[] = [
  {
    name: 'one Redis server',
    startBackend: async () => {
      const server = await RedisServer.start();
      return { url: server.url, stop: () => server.stop() };
    },
  },
  ...(clusterSkipReason
    ? []
    : [
        {
          name: 'a Redis Cluster (sharded pub/sub, redis+cluster:// URL)',
          startBackend: async (): Promise<Backend> => {
            const cluster = await RedisCluster.start();
            return { url: cluster.url, stop: () => cluster.stop() };
          },
        },
      ]),
];

describe.each(backends)('four tracker processes behind nginx, over $name', ({ startBackend }) => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-trackers-nginx-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', 'image.iso'), bytes);
    const backend = await startBackend();
    redis = backend;
    const originPort = await freePort();
    const balancerPort = await freePort();
    origin = daemon(['serve', '--files', join(dir, 'files'), '--port', String(originPort), '--host', '127.0.0.1'], originPort);
    await waitFor(() => origin.out().includes('web page:'), `the origin to start: ${origin.out()}`);
    const ports = await Promise.all(Array.from({ length: TRACKERS }, () => freePort()));
    trackers = ports.map((port) =>
      daemon(['tracker', '--origin', `http://127.0.0.1:${originPort}`, '--port', String(port), '--host', '127.0.0.1', '--redis', backend.url, '--server-url', `http://127.0.0.1:${balancerPort}`, '--announce-interval', '2'], port),
    );
    for (const tracker of trackers) await waitFor(() => tracker.out().includes('peerfill tracker '), `a tracker to start: ${tracker.out()}`);
    balancer = await startBalancer({ port: balancerPort, originUrl: `http://127.0.0.1:${originPort}`, trackerUrls: ports.map((port) => `http://127.0.0.1:${port}`), connectTimeout: '1s' });
    const list = (await (await fetch(`${balancer.url}/files`)).json()) as { files: Array<{ file_id: string }> };
    fileId = list.files[0]!.file_id;
  }, 120_000);

  afterAll(async () => {
    for (const proc of peers.splice(0)) await killProcess(proc);
    await balancer?.stop();
    for (const tracker of trackers) await stopDaemon(tracker);
    await stopDaemon(origin);
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('spread one swarm over all four, relay offers and answers between them, and survive losing one', async () => {
    const seeder = run(['seed', join(dir, 'files', 'image.iso'), '--server', balancer.url, '--json']);
    await seeder.waitForLine((line) => line.event === 'seeding', 'the seeder to check its file');

    // Phase 1: seven leechers; with the seeder, eight peers, two per tracker process (least_conn).
    const first = Array.from({ length: 7 }, (_, i) => ({ name: `first-${i}`, proc: leecher(`first-${i}`) }));
    const firstDone = await Promise.all(first.map(({ name, proc }) => checkDone(proc, name)));
    const fromPeers = firstDone.map((done) => Number(done.from_peers_bytes));
    for (const done of firstDone) expect(Number(done.from_peers_bytes) + Number(done.from_http_bytes)).toBe(FILE_BYTES);
    expect(fromPeers.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);

    await waitFor(async () => (await Promise.all(trackers.map(trackerMetrics))).every((m) => m.peers > 0), 'every tracker to hold peers', 20_000);
    const before = await Promise.all(trackers.map(trackerMetrics));
    const relayed = before.reduce((sum, m) => sum + m.relayedViaPubsub, 0);
    expect(relayed).toBeGreaterThan(0);
    console.log(
      `trackers behind nginx: peers per process ${before.map((m) => m.peers).join('/')}; signals relayed across processes ${relayed}; ` +
        `from peers per leecher (MiB) ${fromPeers.map((b) => (b / MiB).toFixed(1)).join(' ')}`,
    );

    // Phase 2: three more leechers start; once they are taking bytes from peers, a tracker
    // process with peers dies (SIGKILL). Its peers reconnect through nginx to the other three.
    const victimIndex = before.findIndex((m) => m.peers > 0);
    const victim = trackers[victimIndex]!;
    const victimPeers = before[victimIndex]!.peers;
    const second = Array.from({ length: 3 }, (_, i) => ({ name: `second-${i}`, proc: leecher(`second-${i}`) }));
    await Promise.race(second.map(({ proc }) => proc.waitForLine((line) => line.event === 'chunk', 'a first chunk', 60_000)));
    await stopDaemon(victim);
    const killedMidRun = second.filter(({ proc }) => !proc.lines().some((line) => line.event === 'done')).length;

    const secondDone = await Promise.all(second.map(({ name, proc }) => checkDone(proc, name)));
    for (const done of secondDone) expect(Number(done.from_peers_bytes) + Number(done.from_http_bytes)).toBe(FILE_BYTES);
    expect(secondDone.reduce((sum, done) => sum + Number(done.from_peers_bytes), 0)).toBeGreaterThan(0);

    // Every peer (1 seeder + 10 leechers) is held by the three live processes again.
    const live = trackers.filter((_, index) => index !== victimIndex);
    await waitFor(async () => (await Promise.all(live.map(trackerMetrics))).reduce((sum, m) => sum + m.peers, 0) === 11, 'the dead tracker\'s peers to reconnect', 30_000);
    const after = await Promise.all(live.map(trackerMetrics));
    console.log(
      `killed tracker ${victimIndex} (${victimPeers} peers) with ${killedMidRun} of 3 downloads still running; peers per live process afterwards ${after.map((m) => m.peers).join('/')}; ` +
        `from peers per second-wave leecher (MiB) ${secondDone.map((d) => (Number(d.from_peers_bytes) / MiB).toFixed(1)).join(' ')}`,
    );
    expect(killedMidRun).toBeGreaterThan(0);
  }, 300_000);
});
