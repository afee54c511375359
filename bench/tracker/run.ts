// Tracker benchmark: our tracker vs bittorrent-tracker's Server (ws only), same load, same run.
// `node --import tsx bench/tracker/run.ts [--peers N] [--hold N] [--seconds S] [--rounds R]
//   [--generators G] [--client raw|ws]`
// Each server runs alone in its own process pinned to core 0 (taskset); G load-generator
// processes share the other cores. The CPU each side used in the measured window is read from
// /proc/<pid>/stat and printed, so a reader sees which side saturated: a server below ~90% of
// its core while the generators are near theirs means the figure is the generator's, not the
// server's. "per server CPU-second" divides out a server that was starved by other load.
// Everything is bounded in count and time; failures print.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';
import { freePort } from '../../test/support/net.ts';

const resultCodec = createCodec(
  Type.Object({ answered: Type.Integer(), seconds: Type.Number(), latencyBuckets: Type.Array(Type.Tuple([Type.Integer(), Type.Integer()])), failures: Type.Integer() }),
);
const heldCodec = createCodec(Type.Object({ answered: Type.Integer(), failures: Type.Integer() }));
const decodeLine = <T>(codec: { parse(value: unknown): T }, line: string): T => {
  const parsed = parseJson(line);
  return codec.parse(parsed.ok ? parsed.value : undefined);
};

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '4000' },
    hold: { type: 'string', default: '50000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    generators: { type: 'string', default: '2' },
    client: { type: 'string', default: 'raw' },
  },
});
if (values.client !== 'raw' && values.client !== 'ws') throw new Error('--client is raw or ws');
const CLIENT = values.client;
const ROUNDS = Math.max(1, Math.min(10, Number(values.rounds)));
const GENERATORS = Math.max(1, Math.min(8, Number(values.generators)));
const THROUGHPUT_PEERS = Math.min(20_000, Number(values.peers));
const HARD_FD_LIMIT = Number(/Max open files\s+\d+\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]?.replace('unlimited', '1000000') ?? 1024);
// One fd per peer on the server: a hard limit below the target caps what this machine can show.
const HOLD_PEERS = Math.min(60_000, Number(values.hold), HARD_FD_LIMIT >= 200_000 ? Infinity : HARD_FD_LIMIT - 1000);
const SECONDS = Math.min(60, Number(values.seconds));
const SWARMS = 50;
const swarmHashes = Array.from({ length: SWARMS }, () => randomBytes(20).toString('hex'));
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const SOURCE_ADDRESSES = 20;
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const cores = Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? 1);

/** node under `ulimit -n` and a CPU pin; `exec` keeps the pid, so /proc/<pid> is node's. */
function spawnNode(script: string, args: string[], cpuList: string): ChildProcess {
  const quoted = [script, ...args].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ');
  const pin = cores > 1 ? `taskset -c ${cpuList} ` : '';
  // Raise the soft fd limit as far as allowed (root without CAP_SYS_RESOURCE cannot pass the hard one).
  return spawn('sh', ['-c', `(ulimit -n 200000 2>/dev/null || ulimit -n $(ulimit -Hn)) && exec ${pin}${JSON.stringify(process.execPath)} --max-old-space-size=4096 --import tsx ${quoted}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

function waitForLine(child: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (data: Buffer) => {
      buffer += data.toString('utf8');
      const line = buffer.split('\n').find((candidate) => candidate.startsWith(prefix));
      if (line) {
        clearTimeout(timer);
        resolve(line.slice(prefix.length).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before "${prefix}"`));
    });
  });
}

/** CPU time of a process so far, in seconds: user, system. */
function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5) (utime, stime); the slice starts at field 3.
  return { user: Number(fields[11]) / CLOCK_TICKS_PER_SECOND, system: Number(fields[12]) / CLOCK_TICKS_PER_SECOND };
}
const cpuSeconds = (pid: number) => {
  const times = cpuTimes(pid);
  return times.user + times.system;
};

/** Busy and total jiffies of the given cpus, from /proc/stat (softirq work counts too). */
function coreTimes(cpus: number[]): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^cpu(\d+) (.*)$/.exec(line);
    if (!match || !cpus.includes(Number(match[1]))) continue;
    const fields = match[2]!.trim().split(/\s+/).map(Number);
    const sum = fields.slice(0, 8).reduce((x, y) => x + y, 0);
    total += sum;
    busy += sum - fields[3]! - fields[4]!; // minus idle and iowait
  }
  return { busy, total };
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

interface Throughput {
  announcesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  serverCpuPercent: number;
  /** Of serverCpuPercent, the kernel's share (syscalls, loopback TCP). */
  serverSystemPercent: number;
  generatorCpuPercent: number;
  /** How busy the generators' cores were, whoever used them: near 100% means they were the limit. */
  generatorCoresBusyPercent: number;
  perServerCpuSecond: number;
  loadAverage: string;
}

interface Hold {
  heldPeers: number;
  holdFailures: number;
  idleRssMb: number;
  heldRssMb: number;
  rssPerPeerKb: number;
}

type Kind = 'peerfill' | 'bittorrent-tracker';
const GENERATOR_CPUS = cores > 1 ? `1-${cores - 1}` : '0';
const generatorCpuList = cores > 1 ? Array.from({ length: cores - 1 }, (_, i) => i + 1) : [0];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentileOf(buckets: Map<number, number>, total: number, p: number): number {
  const rank = Math.min(total - 1, Math.floor((p / 100) * total));
  let seen = 0;
  for (const bucket of [...buckets.keys()].sort((a, b) => a - b)) {
    seen += buckets.get(bucket)!;
    if (seen > rank) return bucket / 10;
  }
  return 0;
}

async function withServer<T>(kind: Kind, body: (server: ChildProcess, url: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const url = kind === 'peerfill' ? `ws://127.0.0.1:${port}/announce` : `ws://127.0.0.1:${port}`;
  const server = spawnNode(here('server.ts'), [kind, String(port)], '0');
  try {
    await waitForLine(server, 'READY', 30_000);
    return await body(server, url);
  } finally {
    await stop(server);
  }
}

/** G generator processes sharing `peers` between them, each READY (all sockets open). */
async function startGenerators(mode: 'throughput' | 'hold', url: string, peers: number): Promise<ChildProcess[]> {
  const generators: ChildProcess[] = [];
  try {
    const ready: Promise<string>[] = [];
    for (let g = 0; g < GENERATORS; g++) {
      const firstPeer = Math.floor((g * peers) / GENERATORS);
      const count = Math.floor(((g + 1) * peers) / GENERATORS) - firstPeer;
      const options = { mode, client: CLIENT, url, peers: count, firstPeer, swarms: swarmHashes, sourceAddresses: SOURCE_ADDRESSES };
      const generator = spawnNode(here('load.ts'), [JSON.stringify(options)], GENERATOR_CPUS);
      generators.push(generator);
      ready.push(waitForLine(generator, 'READY', 600_000));
    }
    await Promise.all(ready);
    return generators;
  } catch (error) {
    await Promise.all(generators.map(stop));
    throw error;
  }
}

const command = (generators: ChildProcess[], line: string) => {
  for (const generator of generators) generator.stdin!.write(`${line}\n`);
};

async function measureThroughput(kind: Kind): Promise<Throughput> {
  return withServer(kind, async (server, url) => {
    const generators = await startGenerators('throughput', url, THROUGHPUT_PEERS);
    try {
      const results = generators.map((generator) => waitForLine(generator, 'RESULT', 60_000 + SECONDS * 2000));
      command(generators, 'start');
      await sleep(2000); // warm-up
      const cpuAt = () => ({ server: cpuSeconds(server.pid!), serverSystem: cpuTimes(server.pid!).system, generators: generators.reduce((sum, generator) => sum + cpuSeconds(generator.pid!), 0), cores: coreTimes(generatorCpuList), wallNs: process.hrtime.bigint() });
      const before = cpuAt();
      command(generators, 'measure');
      await sleep(SECONDS * 1000);
      const after = cpuAt();
      command(generators, 'stop');
      const loadAverage = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      const decoded = (await Promise.all(results)).map((line) => decodeLine(resultCodec, line));
      const wallSeconds = Number(after.wallNs - before.wallNs) / 1e9;
      const buckets = new Map<number, number>();
      let answered = 0;
      for (const result of decoded) {
        answered += result.answered;
        for (const [bucket, count] of result.latencyBuckets) buckets.set(bucket, (buckets.get(bucket) ?? 0) + count);
      }
      const announcesPerSecond = decoded.reduce((sum, result) => sum + result.answered / result.seconds, 0);
      const serverCpuPercent = (100 * (after.server - before.server)) / wallSeconds;
      return {
        announcesPerSecond,
        p50Ms: percentileOf(buckets, answered, 50),
        p99Ms: percentileOf(buckets, answered, 99),
        failures: decoded.reduce((sum, result) => sum + result.failures, 0),
        serverCpuPercent,
        serverSystemPercent: (100 * (after.serverSystem - before.serverSystem)) / wallSeconds,
        generatorCpuPercent: (100 * (after.generators - before.generators)) / wallSeconds,
        generatorCoresBusyPercent: (100 * (after.cores.busy - before.cores.busy)) / Math.max(1, after.cores.total - before.cores.total),
        perServerCpuSecond: announcesPerSecond / Math.max(0.01, serverCpuPercent / 100),
        loadAverage,
      };
    } finally {
      await Promise.all(generators.map(stop));
    }
  });
}

async function measureHold(kind: Kind): Promise<Hold> {
  return withServer(kind, async (server, url) => {
    await sleep(500);
    const idleRss = rssBytes(server.pid!);
    const generators = await startGenerators('hold', url, HOLD_PEERS);
    try {
      const held = generators.map((generator) => waitForLine(generator, 'HELD', 600_000));
      command(generators, 'start');
      const counts = (await Promise.all(held)).map((line) => decodeLine(heldCodec, line));
      await sleep(2000);
      const heldRss = rssBytes(server.pid!);
      const heldPeers = counts.reduce((sum, count) => sum + count.answered, 0);
      return {
        heldPeers,
        holdFailures: counts.reduce((sum, count) => sum + count.failures, 0),
        idleRssMb: idleRss / 1024 ** 2,
        heldRssMb: heldRss / 1024 ** 2,
        rssPerPeerKb: (heldRss - idleRss) / 1024 / Math.max(1, heldPeers),
      };
    } finally {
      await Promise.all(generators.map(stop));
    }
  });
}

// The machine may be shared: alternate the two, round after round, and print every round.
console.log(
  `tracker benchmark: ${THROUGHPUT_PEERS} closed-loop peers for ${SECONDS}s (1 offer, numwant 1, ${SWARMS} swarms), ${GENERATORS} generator process(es) (${CLIENT} client) on cpu ${GENERATOR_CPUS}; server pinned to cpu 0 of ${cores}; ${HOLD_PEERS} held peers`,
);
const rounds: Record<Kind, Throughput[]> = { peerfill: [], 'bittorrent-tracker': [] };
const roundLine = (kind: Kind, round: number, t: Throughput) =>
  `round ${round} ${kind.padEnd(19)} ${t.announcesPerSecond.toFixed(0).padStart(7)} announces/s  p50 ${t.p50Ms.toFixed(1).padStart(7)} ms  p99 ${t.p99Ms.toFixed(1).padStart(7)} ms  server CPU ${t.serverCpuPercent.toFixed(0).padStart(3)}% (sys ${t.serverSystemPercent.toFixed(0).padStart(2)}%)  generators CPU ${t.generatorCpuPercent.toFixed(0).padStart(3)}% (their cores busy ${t.generatorCoresBusyPercent.toFixed(0).padStart(3)}%)  ${t.perServerCpuSecond.toFixed(0).padStart(7)} per server CPU-s  failures ${t.failures}  loadavg ${t.loadAverage}`;
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate who goes first, so neither always gets the quieter moment.
  const order: Kind[] = round % 2 === 1 ? ['peerfill', 'bittorrent-tracker'] : ['bittorrent-tracker', 'peerfill'];
  for (const kind of order) {
    const result = await measureThroughput(kind);
    rounds[kind].push(result);
    console.log(roundLine(kind, round, result));
  }
}
const ours = { hold: await measureHold('peerfill') };
const theirs = { hold: await measureHold('bittorrent-tracker') };
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
};
/** A round where the server used >= 85% of its core: there the rate is the server's capacity. */
const SATURATED_CPU_PERCENT = 85;
const summary = (kind: Kind) => {
  const list = rounds[kind];
  const best = list.reduce((x, y) => (y.announcesPerSecond > x.announcesPerSecond ? y : x));
  const saturated = list.filter((t) => t.serverCpuPercent >= SATURATED_CPU_PERCENT);
  return {
    best,
    bestSaturated: saturated.length > 0 ? Math.max(...saturated.map((t) => t.announcesPerSecond)) : Number.NaN,
    medianRate: median(list.map((t) => t.announcesPerSecond)),
    medianPerCpu: median(list.map((t) => t.perServerCpuSecond)),
    medianCpu: median(list.map((t) => t.serverCpuPercent)),
    min: Math.min(...list.map((t) => t.announcesPerSecond)),
    max: Math.max(...list.map((t) => t.announcesPerSecond)),
  };
};
const a = summary('peerfill');
const b = summary('bittorrent-tracker');
console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
const row = (label: string, x: number, y: number, digits = 1, higherIsBetter = true) => {
  const ratio = higherIsBetter ? x / y : y / x;
  return `${label.padEnd(38)}${x.toFixed(digits).padStart(14)}${y.toFixed(digits).padStart(20)}${`${ratio.toFixed(2)}x`.padStart(10)}`;
};
if (HOLD_PEERS < Number(values.hold)) console.log(`note: hard fd limit ${HARD_FD_LIMIT} (no CAP_SYS_RESOURCE to raise it): holding ${HOLD_PEERS} peers instead of ${values.hold}; RSS at ${values.hold} extrapolated below`);
console.log(`${''.padEnd(38)}${'peerfill'.padStart(14)}${'bittorrent-tracker'.padStart(20)}${'ratio'.padStart(10)}`);
console.log(row('announces answered /s (best round)', a.best.announcesPerSecond, b.best.announcesPerSecond, 0));
console.log(row('announces answered /s (median)', a.medianRate, b.medianRate, 0));
console.log(row(`  best round with server CPU >= ${SATURATED_CPU_PERCENT}%`, a.bestSaturated, b.bestSaturated, 0));
console.log(`${'  spread over rounds (min..max)'.padEnd(38)}${`${a.min.toFixed(0)}..${a.max.toFixed(0)}`.padStart(14)}${`${b.min.toFixed(0)}..${b.max.toFixed(0)}`.padStart(20)}`);
console.log(row('server CPU % (median)', a.medianCpu, b.medianCpu, 0, false));
console.log(row('announces per server CPU-s (median)', a.medianPerCpu, b.medianPerCpu, 0));
console.log(row('announce->reply p50 ms (best round)', a.best.p50Ms, b.best.p50Ms, 2, false));
console.log(row('announce->reply p99 ms (best round)', a.best.p99Ms, b.best.p99Ms, 2, false));
console.log(row('peers held', ours.hold.heldPeers, theirs.hold.heldPeers, 0));
console.log(row('RSS idle MB', ours.hold.idleRssMb, theirs.hold.idleRssMb, 1, false));
console.log(row('RSS with peers held MB', ours.hold.heldRssMb, theirs.hold.heldRssMb, 1, false));
console.log(row('RSS per held peer KB', ours.hold.rssPerPeerKb, theirs.hold.rssPerPeerKb, 2, false));
const failures = (kind: Kind) => rounds[kind].reduce((sum, t) => sum + t.failures, 0);
console.log(`failures: peerfill throughput ${failures('peerfill')}, hold ${ours.hold.holdFailures}; bittorrent-tracker throughput ${failures('bittorrent-tracker')}, hold ${theirs.hold.holdFailures}`);
const bothSaturated = !Number.isNaN(a.bestSaturated) && !Number.isNaN(b.bestSaturated);
if (!bothSaturated) {
  console.log(`note: not every server reached ${SATURATED_CPU_PERCENT}% CPU in a round (other load on the machine, or the generators): the throughput target is judged on announces per server CPU-second instead`);
}
const extrapolatedMb = ours.hold.idleRssMb + (ours.hold.rssPerPeerKb * Number(values.hold)) / 1024;
if (HOLD_PEERS < Number(values.hold)) console.log(`peerfill RSS extrapolated to ${values.hold} peers: ${extrapolatedMb.toFixed(0)} MB (from the per-peer figure measured above)`);
const targets = [
  bothSaturated
    ? [`announces/s on one core >= 1.5x bittorrent-tracker (best saturated rounds)`, a.bestSaturated >= 1.5 * b.bestSaturated]
    : [`announces per server CPU-second >= 1.5x bittorrent-tracker (median rounds)`, a.medianPerCpu >= 1.5 * b.medianPerCpu],
  [`${values.hold} peers held by one process`, ours.hold.heldPeers >= Number(values.hold)],
  [`RSS <= 1 GB with ${values.hold} peers${HOLD_PEERS < Number(values.hold) ? ' (extrapolated)' : ''}`, extrapolatedMb <= 1024 && ours.hold.heldRssMb <= 1024],
] as const;
for (const [name, met] of targets) console.log(`target ${met ? 'MET ' : 'MISSED'}: ${name}`);
process.exitCode = targets.every(([, met]) => met) ? 0 : 1;
