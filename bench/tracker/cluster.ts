// Tracker benchmark, scaled out: four `peerfill tracker` processes (the real CLI, default
// limits, `--open`) over a real Redis Cluster (3 primaries + 3 replicas, the test fixture),
// with `peerfill serve` as their origin, and load generators in their own processes.
//
//   node --import tsx bench/tracker/cluster.ts [--peers 60000] [--trackers 4]
//     [--generators-per-tracker 1] [--seconds 20] [--limit-seconds 300] [--profile]
//
// Phase 1 (hold): every peer opens its WebSocket straight to one tracker (each generator
// talks to one tracker) and announces `started` once; RSS per held peer is read from
// /proc. Phase 2 (load): the same held peers switch to a closed loop of `update` announces
// with one offer (relayed to another peer of the swarm, on whichever process it is), for
// --seconds. Printed: announces answered /s in total and per process, p50/p99
// announce-to-reply, Redis commands per announce (INFO commandstats on the primaries,
// delta over the window / announces), CPU of every process and CPU per announce, load
// average. Bounded: every step has a time limit and the whole run stops itself after
// --limit-seconds; whatever failed, and where, is printed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import { Redis } from 'ioredis';
import { createCodec, parseJson } from '../../protocol/index.ts';
import { freePort } from '../../test/support/net.ts';
import { RedisCluster } from '../../test/tracker/fixtures/redis-cluster.ts';
import { summarizeProfile } from './cpu-profile.ts';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '60000' },
    trackers: { type: 'string', default: '4' },
    'generators-per-tracker': { type: 'string', default: '1' },
    seconds: { type: 'string', default: '20' },
    'limit-seconds': { type: 'string', default: '300' },
    /** Run tracker 1 under `node --cpu-prof` and print where its time went. */
    profile: { type: 'boolean', default: false },
  },
});
const TRACKERS = Math.max(1, Math.min(8, Number(values.trackers)));
const PER_TRACKER_GENERATORS = Math.max(1, Math.min(4, Number(values['generators-per-tracker'])));
const PEERS = Math.max(TRACKERS, Math.min(200_000, Number(values.peers)));
const SECONDS = Math.max(2, Math.min(60, Number(values.seconds)));
const LIMIT_SECONDS = Math.max(30, Math.min(600, Number(values['limit-seconds'])));
const SWARMS = 50;
/** Source addresses per generator: the tracker's default cap is 256 sockets per address. */
const SOURCE_ADDRESSES = 250;
const HARD_FD_LIMIT = Number(/Max open files\s+\d+\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]?.replace('unlimited', '1000000') ?? 1024);
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/peerfill.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const startedAt = Date.now();
const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(0)}s`;
const log = (line: string) => console.log(`[${elapsed()}] ${line}`);

const readyCodec = createCodec(Type.Object({ opened: Type.Integer(), failed: Type.Integer(), firstError: Type.Union([Type.String(), Type.Null()]) }));
const heldCodec = createCodec(Type.Object({ peers: Type.Integer(), answered: Type.Integer(), failures: Type.Integer() }));
const resultCodec = createCodec(
  Type.Object({ peers: Type.Integer(), answered: Type.Integer(), seconds: Type.Number(), latencyBuckets: Type.Array(Type.Tuple([Type.Integer(), Type.Integer()])), failures: Type.Integer() }),
);
const decodeLine = <T>(codec: { parse(value: unknown): T }, line: string): T => {
  const parsed = parseJson(line);
  return codec.parse(parsed.ok ? parsed.value : undefined);
};

interface Proc {
  name: string;
  child: ChildProcess;
  /** The pid whose /proc figures count (node's, or redis-server's). */
  pid: number;
  out: string;
}

const procs: Proc[] = [];

/** A command under the raised soft fd limit; `exec` keeps the pid, so /proc/<pid> is the program's. */
function spawnProc(name: string, argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const quoted = argv.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('sh', ['-c', `ulimit -n $(ulimit -Hn) && exec ${quoted}`], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const proc: Proc = { name, child, pid: child.pid!, out: '' };
  child.stdout.on('data', (data: Buffer) => (proc.out += data.toString('utf8')));
  child.stderr.on('data', (data: Buffer) => (proc.out += data.toString('utf8')));
  procs.push(proc);
  return proc;
}

function waitForOutput(proc: Proc, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = pattern.exec(proc.out);
      if (!match) return false;
      cleanup();
      resolve(match);
      return true;
    };
    const onData = () => void check();
    const onExit = (code: number | null) => {
      if (check()) return;
      cleanup();
      reject(new Error(`${proc.name} exited (${code}) before ${pattern}: ${proc.out.slice(-2000)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${proc.name}: no ${pattern} within ${timeoutMs} ms: ${proc.out.slice(-2000)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      proc.child.stdout!.off('data', onData);
      proc.child.stderr!.off('data', onData);
      proc.child.off('exit', onExit);
    };
    proc.child.stdout!.on('data', onData);
    proc.child.stderr!.on('data', onData);
    proc.child.once('exit', onExit);
    check();
  });
}

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

function rssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Every core's busy share since `before`, from /proc/stat. */
function machineTimes(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((x, y) => x + y, 0);
  return { busy: total - fields[3]! - fields[4]!, total };
}

async function stopAll(): Promise<void> {
  await Promise.all(
    procs.map(async (proc) => {
      const child = proc.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }),
  );
}

type Stats = Map<string, number>;
async function commandStats(nodes: Redis[]): Promise<Stats> {
  const stats: Stats = new Map();
  for (const node of nodes) {
    for (const line of (await node.info('commandstats')).split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (match) stats.set(match[1]!, (stats.get(match[1]!) ?? 0) + Number(match[2]));
    }
  }
  return stats;
}
function statsDelta(before: Stats, after: Stats): Stats {
  const out: Stats = new Map();
  // The bench's own INFO calls are not tracker work; cluster bookkeeping (cluster/ping) is counted.
  for (const [name, calls] of after) if (name !== 'info' && calls - (before.get(name) ?? 0) > 0) out.set(name, calls - (before.get(name) ?? 0));
  return out;
}
const sum = (stats: Stats) => [...stats.values()].reduce((x, y) => x + y, 0);

function percentile(buckets: Map<number, number>, p: number): number {
  const total = [...buckets.values()].reduce((x, y) => x + y, 0);
  const rank = Math.min(total - 1, Math.floor((p / 100) * total));
  let seen = 0;
  for (const bucket of [...buckets.keys()].sort((a, b) => a - b)) {
    seen += buckets.get(bucket)!;
    if (seen > rank) return bucket / 10;
  }
  return Number.NaN;
}

const limitTimer = setTimeout(() => {
  console.log(`STOPPED: the run passed its ${LIMIT_SECONDS} s limit; load average ${loadAverage()}`);
  void stopAll().finally(() => process.exit(3));
}, LIMIT_SECONDS * 1000);

const keys = `bench:${randomBytes(24).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'pf-bench-cluster-'));
let cluster: RedisCluster | undefined;
const nodes: Redis[] = [];
try {
  console.log(
    `scaled-out tracker benchmark (bench/tracker/cluster.ts): ${PEERS} peers over ${TRACKERS} \`peerfill tracker\` processes, ${TRACKERS * PER_TRACKER_GENERATORS} generator processes (${PER_TRACKER_GENERATORS} per tracker, raw client, ${SOURCE_ADDRESSES} source addresses each), ${SWARMS} swarms, ${SECONDS}s of load; hard fd limit ${HARD_FD_LIMIT}; ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} cores`,
  );
  log(`load average ${loadAverage()}`);
  const perTracker = Math.ceil(PEERS / TRACKERS);
  if (perTracker + 500 > HARD_FD_LIMIT) log(`note: ${perTracker} peers per tracker process is above the ${HARD_FD_LIMIT} open-file limit less headroom: expect that process to refuse sockets (EMFILE)`);

  cluster = await RedisCluster.start({ nodeTimeoutMs: 5000 });
  for (const url of cluster.urls) {
    const node = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await node.connect();
    nodes.push(node);
  }
  const redisProcs: { name: string; pid: number; primary: boolean; client: Redis }[] = [];
  for (const node of nodes) {
    const pid = Number(/process_id:(\d+)/.exec(await node.info('server'))?.[1]);
    const primary = /role:master/.test(await node.info('replication'));
    redisProcs.push({ name: `redis ${primary ? 'primary' : 'replica'} :${node.options.port}`, pid, primary, client: node });
  }
  const primaries = redisProcs.filter((node) => node.primary).map((node) => node.client);
  log(`redis cluster up: ${primaries.length} primaries, ${redisProcs.length - primaries.length} replicas`);

  const env = { PEERFILL_SIGNING_KEYS: keys, PEERFILL_LOG_LEVEL: 'warn', HOME: process.env.HOME ?? '/tmp' };
  await mkdir(join(dir, 'files'));
  const originPort = await freePort();
  const origin = spawnProc('origin', [process.execPath, CLI, 'serve', '--files', join(dir, 'files'), '--port', String(originPort), '--host', '127.0.0.1'], { ...env, PEERFILL_DATA_DIR: join(dir, 'origin') });
  await waitForOutput(origin, /web page:/, 60_000);
  const trackerPorts = await Promise.all(Array.from({ length: TRACKERS }, () => freePort()));
  const trackers = trackerPorts.map((port, index) =>
    spawnProc(`tracker ${index + 1}`, [process.execPath, '--max-old-space-size=4096', ...(values.profile && index === 0 ? ['--cpu-prof', '--cpu-prof-dir', join(dir, 'profile')] : []), CLI, 'tracker', '--origin', `http://127.0.0.1:${originPort}`, '--port', String(port), '--host', '127.0.0.1', '--redis', cluster!.url, '--open'], {
      ...env,
      PEERFILL_DATA_DIR: join(dir, `tracker-${port}`),
    }),
  );
  for (const tracker of trackers) await waitForOutput(tracker, /peerfill tracker /, 60_000);
  await sleep(1000);
  const idleRss = trackers.map((tracker) => rssMb(tracker.pid));
  log(`origin and ${TRACKERS} trackers up; tracker RSS idle ${idleRss.map((mb) => mb.toFixed(0)).join(', ')} MB; load average ${loadAverage()}`);

  // Phase 1: open and hold.
  const swarms = Array.from({ length: SWARMS }, () => randomBytes(20).toString('hex'));
  const generators: { proc: Proc; tracker: number }[] = [];
  for (let t = 0; t < TRACKERS; t++) {
    const trackerPeers = Math.floor(((t + 1) * PEERS) / TRACKERS) - Math.floor((t * PEERS) / TRACKERS);
    for (let g = 0; g < PER_TRACKER_GENERATORS; g++) {
      const count = Math.floor(((g + 1) * trackerPeers) / PER_TRACKER_GENERATORS) - Math.floor((g * trackerPeers) / PER_TRACKER_GENERATORS);
      const firstPeer = Math.floor((t * PEERS) / TRACKERS) + Math.floor((g * trackerPeers) / PER_TRACKER_GENERATORS);
      const options = { mode: 'hold', client: 'raw', url: `ws://127.0.0.1:${trackerPorts[t]}/announce`, peers: count, firstPeer, swarms, sourceAddresses: SOURCE_ADDRESSES };
      const proc = spawnProc(`generator ${t + 1}.${g + 1}`, [process.execPath, '--max-old-space-size=4096', '--import', 'tsx', here('load.ts'), JSON.stringify(options)]);
      generators.push({ proc, tracker: t });
    }
  }
  const openStarted = Date.now();
  const ready = await Promise.all(generators.map(({ proc }) => waitForOutput(proc, /^READY (.*)\n/m, 240_000).then((match) => decodeLine(readyCodec, match[1]!))));
  const opened = ready.reduce((total, r) => total + r.opened, 0);
  log(`sockets open: ${opened} of ${PEERS} in ${((Date.now() - openStarted) / 1000).toFixed(1)} s; refused ${ready.reduce((total, r) => total + r.failed, 0)}${ready.some((r) => r.firstError) ? ` (first: ${ready.find((r) => r.firstError)!.firstError})` : ''}; load average ${loadAverage()}`);
  const command = (line: string) => {
    for (const { proc } of generators) proc.child.stdin!.write(`${line}\n`);
  };
  const heldStarted = Date.now();
  const heldLines = generators.map(({ proc }) => waitForOutput(proc, /^HELD (.*)\n/m, 200_000).then((match) => decodeLine(heldCodec, match[1]!)));
  command('start');
  const held = await Promise.all(heldLines);
  const heldPeers = held.reduce((total, h) => total + h.answered, 0);
  await sleep(2000);
  const heldRss = trackers.map((tracker) => rssMb(tracker.pid));
  const perTrackerHeld = trackers.map((_, t) => generators.reduce((total, g, i) => total + (g.tracker === t ? held[i]!.answered : 0), 0));
  log(`held: ${heldPeers} peers answered their started announce in ${((Date.now() - heldStarted) / 1000).toFixed(1)} s (failures ${held.reduce((total, h) => total + h.failures, 0)}); load average ${loadAverage()}`);

  // Phase 2: the held peers announce in a closed loop.
  const resultLines = generators.map(({ proc }) => waitForOutput(proc, /^RESULT (.*)\n/m, 60_000 + SECONDS * 3000).then((match) => decodeLine(resultCodec, match[1]!)));
  command('loop');
  await sleep(3000); // warm-up
  const snapshot = async () => ({ stats: await commandStats(primaries), cpu: procs.map((proc) => cpuSeconds(proc.pid)), redisCpu: redisProcs.map((node) => cpuSeconds(node.pid)), machine: machineTimes(), at: process.hrtime.bigint() });
  const before = await snapshot();
  command('measure');
  await sleep(SECONDS * 1000);
  command('stop');
  const after = await snapshot();
  const loadAtEnd = loadAverage();
  const results = await Promise.all(resultLines);
  const wall = Number(after.at - before.at) / 1e9;

  const perProcess = trackers.map((_, t) => generators.reduce((total, g, i) => total + (g.tracker === t ? results[i]!.answered / results[i]!.seconds : 0), 0));
  const rate = perProcess.reduce((x, y) => x + y, 0);
  const answered = results.reduce((total, r) => total + r.answered, 0);
  const buckets = new Map<number, number>();
  for (const r of results) for (const [bucket, count] of r.latencyBuckets) buckets.set(bucket, (buckets.get(bucket) ?? 0) + count);
  const commands = statsDelta(before.stats, after.stats);
  const cpuOf = (index: number) => after.cpu[index]! - before.cpu[index]!;
  const trackerCpu = trackers.map((tracker) => cpuOf(procs.indexOf(tracker)));
  const generatorCpu = generators.map(({ proc }) => cpuOf(procs.indexOf(proc)));
  const redisCpu = redisProcs.map((_, i) => after.redisCpu[i]! - before.redisCpu[i]!);
  const originCpu = cpuOf(procs.indexOf(origin));
  const machineBusy = (100 * (after.machine.busy - before.machine.busy)) / Math.max(1, after.machine.total - before.machine.total);
  const sumOf = (list: number[]) => list.reduce((x, y) => x + y, 0);
  const pct = (seconds: number) => `${((100 * seconds) / wall).toFixed(0).padStart(3)}%`;

  console.log('');
  console.log(`held peers                          ${heldPeers} of ${PEERS} (${perTrackerHeld.join(' + ')})`);
  console.log(`announces answered /s, total        ${rate.toFixed(0)}   (${answered} in ${wall.toFixed(1)} s; failures ${results.reduce((total, r) => total + r.failures, 0)})`);
  trackers.forEach((tracker, t) => console.log(`  ${tracker.name.padEnd(34)}${perProcess[t]!.toFixed(0).padStart(6)} /s   CPU ${pct(trackerCpu[t]!)}   RSS ${idleRss[t]!.toFixed(0)} -> ${heldRss[t]!.toFixed(0)} MB held -> ${rssMb(tracker.pid).toFixed(0)} MB under load`));
  // On a shared machine a process may be runnable but starved: this figure divides that out.
  console.log(`announces per tracker CPU-second   ${(answered / Math.max(0.01, sumOf(trackerCpu))).toFixed(0)}   (trackers' CPU ${pct(sumOf(trackerCpu))} of one core together)`);
  console.log(`announce -> reply p50 / p99         ${percentile(buckets, 50).toFixed(1)} / ${percentile(buckets, 99).toFixed(1)} ms`);
  const rssPerPeer = (1024 * (sumOf(heldRss) - sumOf(idleRss))) / Math.max(1, heldPeers);
  console.log(`RSS per held peer                   ${rssPerPeer.toFixed(2)} KB (trackers' RSS held - idle, summed, / held peers)`);
  console.log(`redis commands per announce         ${(sum(commands) / Math.max(1, answered)).toFixed(2)} on the primaries (${[...commands.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([name, calls]) => `${name} ${(calls / Math.max(1, answered)).toFixed(2)}`).join(', ')})`);
  const perAnnounceUs = (seconds: number) => ((1e6 * seconds) / Math.max(1, answered)).toFixed(0);
  console.log(`CPU per announce                    trackers ${perAnnounceUs(sumOf(trackerCpu))} us, redis primaries ${perAnnounceUs(sumOf(redisCpu.filter((_, i) => redisProcs[i]!.primary)))} us, replicas ${perAnnounceUs(sumOf(redisCpu.filter((_, i) => !redisProcs[i]!.primary)))} us, generators ${perAnnounceUs(sumOf(generatorCpu))} us`);
  console.log(`CPU of every process in the window (${wall.toFixed(1)} s; 100% = one core):`);
  redisProcs.forEach((node, i) => console.log(`  ${node.name.padEnd(34)}${pct(redisCpu[i]!)}`));
  generators.forEach(({ proc }, i) => console.log(`  ${proc.name.padEnd(34)}${pct(generatorCpu[i]!)}   (${(results[i]!.answered / results[i]!.seconds).toFixed(0)} announces/s)`));
  console.log(`  ${'origin'.padEnd(34)}${pct(originCpu)}`);
  console.log(`  ${'sum'.padEnd(34)}${pct(sumOf(trackerCpu) + sumOf(generatorCpu) + sumOf(redisCpu) + originCpu)}   machine busy ${machineBusy.toFixed(0)}% of all cores (other tenants included)`);
  console.log(`load average at the end of the window: ${loadAtEnd}`);
  // The trackers log at warn: anything they said is part of the result.
  for (const tracker of trackers) {
    const said = tracker.out.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('peerfill tracker '));
    if (said.length > 0) console.log(`${tracker.name} logged ${said.length} line(s), the first: ${said.slice(0, 3).map((line) => line.slice(0, 300)).join(' | ')}`);
  }
  if (values.profile) {
    // SIGINT: the CLI shuts down and V8 writes the profile (it covers start, hold and load).
    const first = trackers[0]!.child;
    const exited = new Promise((resolve) => first.once('exit', resolve));
    first.kill('SIGINT');
    await Promise.race([exited, sleep(30_000)]);
    const file = (await readdir(join(dir, 'profile')).catch(() => [])).find((name) => name.endsWith('.cpuprofile'));
    console.log(file ? `\ntracker 1 under --cpu-prof (Redis Cluster store):` : 'tracker 1 wrote no .cpuprofile');
    if (file) for (const line of summarizeProfile(await readFile(join(dir, 'profile', file), 'utf8'), 30)) console.log(line);
  }
} catch (error) {
  console.log(`FAILED at ${elapsed()}: ${error instanceof Error ? error.message : String(error)}; load average ${loadAverage()}`);
  process.exitCode = 1;
} finally {
  clearTimeout(limitTimer);
  for (const node of nodes) node.disconnect();
  await stopAll();
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
}
