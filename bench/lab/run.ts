// The hybrid policy where users are, in the lab (test/lab): hosts with their own down/up rates
// joined through a hub, `peerfill serve` on a fast CDN host, real `get`/`seed` processes on
// home hosts. Bytes the CDN sent come from its interface counters (the kernel's). Each
// scenario measures HTTP-only on the same links in the same run, interleaved.
//   node --import tsx bench/lab/run.ts            (as root)
//   PF_LAB_SCENARIOS (l1,l2,l3,nat)  PF_LAB_L3_MIB (256)  PF_LAB_ROUNDS (2)  PF_LAB_L1_MIB (160)  PF_LAB_L2_MIB (256)  PF_LAB_L2_CLIENTS (8)  PF_LAB_NAT_MIB (48)
// Links have RTT and loss where the lab can make them (netem, else the userspace delay line):
// L1's leecher and seeder 20-30 ms from the CDN, L2's and L3's homes 20-40 ms with 0.2% loss on
// the downlink; PF_LAB_RTT=0 for rates only. Not measured here (see the closing notes of issue
// 13): the WebTorrent reference.
import { cpus, loadavg, tmpdir } from 'node:os';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startCoturn } from '../../test/lab/coturn.ts';
import { createLab, labSupport, type HostSpec, type Lab } from '../../test/lab/lab.ts';
import { runGet, serveFile, startSeed, stop, type GetResult } from '../../test/lab/peerfill.ts';
import { MiB, sha256File, writeTestFile } from '../client/procs.ts';
import { decisionsOf, httpOverlap, linkTimeline, meshOf } from './report.ts';

const SCENARIOS = (process.env.PF_LAB_SCENARIOS ?? 'l1,l2,l3,nat').split(',').filter(Boolean);
const L3_BYTES = Number(process.env.PF_LAB_L3_MIB ?? 256) * MiB;
/** The origin's uplink in L3: below the homes' uplinks together, so the origin is what the crowd waits for. */
const L3_ORIGIN_MBIT = Number(process.env.PF_LAB_L3_ORIGIN_MBIT ?? 24);
/** Which L3 runs to make (PF_LAB_L3_MODES): the swarm, and HTTP-only on the same links. */
const L3_MODES = (process.env.PF_LAB_L3_MODES ?? 'swarm,http-only').split(',');
const ROUNDS = Number(process.env.PF_LAB_ROUNDS ?? 2);
const L1_BYTES = Number(process.env.PF_LAB_L1_MIB ?? 160) * MiB;
const L2_BYTES = Number(process.env.PF_LAB_L2_MIB ?? 256) * MiB;
const L2_CLIENTS = Number(process.env.PF_LAB_L2_CLIENTS ?? 8);
const NAT_BYTES = Number(process.env.PF_LAB_NAT_MIB ?? 48) * MiB;
const TURN_SECRET = 'bench-lab-turn-secret-0123456789';
const L2_DOWN_BITS_PER_SECOND = 100e6;
const SUPPORT = labSupport();
const WITH_RTT = process.env.PF_LAB_RTT !== '0' && SUPPORT.isSupported && (SUPPORT.hasNetem || SUPPORT.hasDelayLine);
/** One-way delay per access link (RTT between two hosts = 2*(d1+d2)) and downlink loss, when the lab can make them. */
const link = (delayMs: number, loss = 0): Partial<HostSpec> => (WITH_RTT ? { delayMs, ...(loss > 0 ? { loss } : {}) } : {});
const CDN: HostSpec = { name: 'cdn', down: '10gbit', up: '10gbit', ...link(2) };

let failures = 0;
const fail = (what: string) => {
  failures++;
  console.log(`FAIL ${what}`);
};

/** Whole-machine CPU busy share and the load average, sampled while a phase runs. */
function cpuMeter(): () => string {
  const read = () => {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { idle, total: fields.reduce((sum, value) => sum + value, 0) };
  };
  const start = read();
  let maxLoad = 0;
  const timer = setInterval(() => (maxLoad = Math.max(maxLoad, loadavg()[0]!)), 1000);
  return () => {
    clearInterval(timer);
    const end = read();
    const busy = 1 - (end.idle - start.idle) / Math.max(1, end.total - start.total);
    return `machine CPU ${(busy * 100).toFixed(0)}% of ${cpus().length} cores, load average max ${maxLoad.toFixed(2)}`;
  };
}

function procCpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const field = (result: GetResult, name: string): number => (typeof result.done?.[name] === 'number' ? result.done[name] : Number.NaN);
const mib = (bytes: number) => (bytes / MiB).toFixed(1);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function checkFile(result: GetResult, path: string, sha256: string, label: string): Promise<void> {
  if (result.crash !== undefined) console.log(`${label}: ${result.crash}`);
  if (result.exitCode !== 0) return fail(`${label}: exit ${result.exitCode}: ${result.stderr.slice(-400)}`);
  if ((await sha256File(path)) !== sha256) fail(`${label}: the file's SHA-256 is wrong`);
}

// --- L1: one slow seeder, a fast CDN ----------------------------------------------------

async function scenarioL1(dir: string): Promise<void> {
  console.log(`\nL1 slow seeder, fast CDN: ${mib(L1_BYTES)} MiB; seeder 100mbit down / 16mbit up; leecher 200mbit down / 20mbit up; CDN not capped${WITH_RTT ? '; RTT to the CDN: leecher 24 ms, seeder 32 ms; leecher-seeder 52 ms' : ''}`);
  const lab = await createLab([CDN, { name: 'seeder', down: '100mbit', up: '16mbit', ...link(14) }, { name: 'leecher', down: '200mbit', up: '20mbit', ...link(10) }]);
  try {
    const sha256 = await writeTestFile(join(dir, 'files', 'l1.bin'), L1_BYTES);
    const server = await serveFile(lab.host('cdn'), 'l1.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, 'data-l1'), port: 8080 });
    const url = server.fileUrl;
    const seeder = await startSeed(lab.host('seeder'), join(dir, 'files', 'l1.bin'), server.serverUrl);
    console.log('round  mode       time s   ratio  peers MiB  CDN MiB  client CPU s  decisions');
    const cpu = cpuMeter();
    for (let round = 1; round <= ROUNDS; round++) {
      // Interleaved, and the order flips each round.
      const modes = round % 2 === 1 ? ['http-only', 'hybrid'] : ['hybrid', 'http-only'];
      const results = new Map<string, { result: GetResult; cdnBytes: number }>();
      for (const mode of modes) {
        const out = join(dir, `l1-${mode}-${round}.bin`);
        const before = await lab.host('cdn').counters();
        const result = await runGet(lab.host('leecher'), url, out, mode === 'http-only' ? ['--no-peers'] : []);
        const cdnBytes = (await lab.host('cdn').counters()).txBytes - before.txBytes;
        await checkFile(result, out, sha256, `L1 round ${round} ${mode}`);
        await rm(out, { force: true });
        results.set(mode, { result, cdnBytes });
      }
      const httpMs = results.get('http-only')!.result.wallMs;
      for (const mode of ['http-only', 'hybrid']) {
        const { result, cdnBytes } = results.get(mode)!;
        const decisions = JSON.stringify((result.lastProgress?.policy as { decisions?: unknown } | undefined)?.decisions ?? {});
        console.log(
          `${String(round).padEnd(6)} ${mode.padEnd(10)} ${(result.wallMs / 1000).toFixed(2).padStart(6)}  ${(result.wallMs / httpMs).toFixed(2).padStart(6)}  ${mib(field(result, 'from_peers_bytes')).padStart(9)}  ${mib(cdnBytes).padStart(7)}  ${(result.cpuSeconds ?? Number.NaN).toFixed(2).padStart(12)}  ${mode === 'hybrid' ? decisions : ''}`,
        );
        if (mode === 'hybrid' && result.wallMs / httpMs > 1.1) console.log(`  (target missed: ${(result.wallMs / httpMs).toFixed(2)}x > 1.1x HTTP-only)`);
      }
    }
    console.log(`L1: ${cpu()}; serve CPU ${procCpuSeconds(server.child.pid).toFixed(1)} s, seeder CPU ${procCpuSeconds(seeder.pid).toFixed(1)} s`);
  } finally {
    await lab.close();
  }
}

// --- L2: a home crowd ----------------------------------------------------------------------

interface CrowdClient {
  index: number;
  arriveMs: number;
  seedSeconds: number;
  result?: GetResult;
  leftMs?: number;
}

async function crowd(lab: Lab, url: string, dir: string, sha256: string, label: string, extraArgs: string[]): Promise<CrowdClient[]> {
  const clients: CrowdClient[] = Array.from({ length: L2_CLIENTS }, (_, index) => ({
    index,
    arriveMs: Math.round((index * 20_000) / Math.max(1, L2_CLIENTS - 1)),
    // Half leave when they finish; half seed for 30 s more.
    seedSeconds: extraArgs.includes('--no-peers') || index % 2 === 0 ? 0 : 30,
  }));
  const startedAt = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      await sleep(client.arriveMs);
      const out = join(dir, `l2-${label}-${client.index}.bin`);
      const args = [...extraArgs, ...(client.seedSeconds > 0 ? ['--seed', String(client.seedSeconds)] : [])];
      client.result = await runGet(lab.host(`home${client.index}`), url, out, args, 300_000);
      client.leftMs = performance.now() - startedAt;
      await checkFile(client.result, out, sha256, `L2 ${label} client ${client.index}`);
      await rm(out, { force: true });
    }),
  );
  return clients;
}

/**
 * The most the peers could have delivered: each client uploads at its uplink's rate while it is
 * there and another client is still downloading (alone, it has no one to send to), and no
 * client gets more from peers than the file less what it had fetched before any peer was there.
 * Also no more than every copy but the first.
 */
function offloadBound(clients: CrowdClient[], upBytesPerSecond: number): number {
  const doneMs = (client: CrowdClient) => client.arriveMs + (client.result?.wallMs ?? 0) - client.seedSeconds * 1000;
  const endMs = Math.max(...clients.map((client) => client.leftMs ?? 0));
  const stepMs = 100;
  let uploadBytes = 0;
  for (let t = 0; t < endMs; t += stepMs) {
    const present = clients.filter((client) => client.arriveMs <= t && t < (client.leftMs ?? 0));
    for (const uploader of present) {
      if (present.some((other) => other !== uploader && t < doneMs(other))) uploadBytes += (upBytesPerSecond * stepMs) / 1000;
    }
  }
  // A client that arrived alone got its first bytes from the CDN at its downlink's pace at most.
  let wantBytes = 0;
  for (const client of clients) {
    const firstPeerAtMs = Math.min(...clients.filter((other) => other !== client && (other.leftMs ?? 0) > client.arriveMs).map((other) => Math.max(other.arriveMs, client.arriveMs)));
    const aloneMs = Number.isFinite(firstPeerAtMs) ? firstPeerAtMs - client.arriveMs : Infinity;
    const aloneBytes = Math.min(L2_BYTES, (aloneMs / 1000) * (L2_DOWN_BITS_PER_SECOND / 8));
    wantBytes += L2_BYTES - aloneBytes;
  }
  return Math.min(uploadBytes, wantBytes, (clients.length - 1) * L2_BYTES);
}

async function scenarioL2(dir: string): Promise<void> {
  const upBitsPerSecond = 20e6;
  console.log(`\nL2 home crowd: ${mib(L2_BYTES)} MiB, ${L2_CLIENTS} leechers (100mbit down / 20mbit up) arriving over 20 s, half seed 30 s more; CDN not capped`);
  // RTT to the CDN 2*(2 + d): d from 8 to 18 ms gives 20 to 40 ms; 0.2% loss on each downlink.
  const homeDelay = (index: number) => 8 + Math.round((index * 10) / Math.max(1, L2_CLIENTS - 1));
  console.log(WITH_RTT ? `   RTT to the CDN 20-40 ms (${Array.from({ length: L2_CLIENTS }, (_, index) => 2 * (2 + homeDelay(index))).join(', ')} ms), 0.2% downlink loss (${SUPPORT.isSupported && SUPPORT.hasNetem ? 'netem' : 'delay line'})` : '   (no RTT or loss: rates only)');
  const hosts: HostSpec[] = [CDN, ...Array.from({ length: L2_CLIENTS }, (_, index) => ({ name: `home${index}`, down: '100mbit', up: '20mbit', ...link(homeDelay(index), 0.002) }))];
  const lab = await createLab(hosts);
  try {
    const sha256 = await writeTestFile(join(dir, 'files', 'l2.bin'), L2_BYTES);
    const runs: Array<{ label: string; args: string[]; floor?: string }> = [
      { label: 'http-only', args: ['--no-peers'] },
      { label: 'default', args: [] },
      { label: 'floor-50mbit', args: ['--speed-floor', '50mbit'] },
    ];
    const httpMs = new Map<number, number>();
    for (const [runIndex, run] of runs.entries()) {
      // A fresh server per run: its sessions and swarm start empty.
      const server = await serveFile(lab.host('cdn'), 'l2.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data-l2-${runIndex}`), port: 8080 + runIndex });
      const url = server.fileUrl;
      const before = await lab.host('cdn').counters();
      const cpu = cpuMeter();
      const clients = await crowd(lab, url, dir, sha256, run.label, run.args);
      const load = cpu();
      const cdnBytes = (await lab.host('cdn').counters()).txBytes - before.txBytes;
      const serveCpu = procCpuSeconds(server.child.pid);
      await stop(server.child);
      const bound = offloadBound(clients, upBitsPerSecond / 8);
      const fromPeers = clients.reduce((sum, client) => sum + (client.result ? field(client.result, 'from_peers_bytes') : 0), 0);
      console.log(`\nL2 ${run.label}: CDN sent ${(cdnBytes / L2_BYTES).toFixed(2)}x the file (${mib(cdnBytes)} MiB); from peers ${mib(fromPeers)} MiB, bound ${mib(bound)} MiB, ${((fromPeers / bound) * 100).toFixed(0)}% of the bound; ${load}; serve CPU ${serveCpu.toFixed(1)} s`);
      console.log('client  arrive s  time s  vs http-only  rate Mbit/s  peers MiB  http MiB  CPU s');
      for (const client of clients) {
        const result = client.result!;
        if (run.label === 'http-only') httpMs.set(client.index, result.wallMs);
        const seedMs = client.seedSeconds * 1000;
        const downloadMs = result.wallMs - seedMs;
        const ratio = downloadMs / (httpMs.get(client.index) ?? Number.NaN);
        const rate = (L2_BYTES * 8) / (downloadMs / 1000) / 1e6;
        console.log(
          `${String(client.index).padEnd(7)} ${(client.arriveMs / 1000).toFixed(1).padStart(8)}  ${(downloadMs / 1000).toFixed(2).padStart(6)}  ${ratio.toFixed(2).padStart(12)}  ${rate.toFixed(1).padStart(11)}  ${mib(field(result, 'from_peers_bytes')).padStart(9)}  ${mib(field(result, 'from_http_bytes')).padStart(8)}  ${(result.cpuSeconds ?? Number.NaN).toFixed(1).padStart(5)}`,
        );
      }
    }
    console.log('  (a seeding client\'s time is its exit time less its 30 s of seeding)');
  } finally {
    await lab.close();
  }
}

// --- L3: an origin-bound flash crowd -------------------------------------------------------

async function scenarioL3(dir: string): Promise<void> {
  const clients = 8;
  const originBitsPerSecond = L3_ORIGIN_MBIT * 1e6;
  const homeDelay = (index: number) => 8 + Math.round((index * 10) / (clients - 1));
  console.log(
    `\nL3 origin-bound flash crowd: ${mib(L3_BYTES)} MiB, ${clients} clients (100mbit down / 20mbit up${WITH_RTT ? ', RTT 20-40 ms, 0.2% loss' : ''}) start together with no seeder; the origin's uplink ${L3_ORIGIN_MBIT}mbit`,
  );
  const hosts: HostSpec[] = [
    { name: 'cdn', down: '10gbit', up: `${L3_ORIGIN_MBIT}mbit`, ...link(2) },
    ...Array.from({ length: clients }, (_, index) => ({ name: `home${index}`, down: '100mbit', up: '20mbit', ...link(homeDelay(index), 0.002) })),
  ];
  const lab = await createLab(hosts);
  try {
    const sha256 = await writeTestFile(join(dir, 'files', 'l3.bin'), L3_BYTES);
    const meanMs = new Map<string, number>();
    const runs = [{ label: 'swarm', args: [] as string[] }, { label: 'http-only', args: ['--no-peers'] }].filter((run) => L3_MODES.includes(run.label));
    for (const [runIndex, run] of runs.entries()) {
      const server = await serveFile(lab.host('cdn'), 'l3.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data-l3-${runIndex}`), port: 8100 + runIndex });
      const before = await lab.host('cdn').counters();
      const cpu = cpuMeter();
      const timeline = linkTimeline(lab.host('cdn'), originBitsPerSecond, Array.from({ length: clients }, (_, index) => lab.host(`home${index}`)), 20e6);
      const results = await Promise.all(
        Array.from({ length: clients }, async (_, index) => {
          const out = join(dir, `l3-${run.label}-${index}.bin`);
          // Everyone stays until the last is done (a flash crowd's seeders are its finished leechers).
          const result = await runGet(lab.host(`home${index}`), server.fileUrl, out, [...run.args, ...(run.label === 'swarm' ? ['--seed', '15'] : [])], 600_000);
          await checkFile(result, out, sha256, `L3 ${run.label} client ${index}`);
          await rm(out, { force: true });
          return result;
        }),
      );
      const load = cpu();
      const links = await timeline();
      const cdnBytes = (await lab.host('cdn').counters()).txBytes - before.txBytes;
      const serveCpuSeconds = procCpuSeconds(server.child.pid);
      await stop(server.child);
      const seedMs = run.label === 'swarm' ? 15_000 : 0;
      const times = results.map((result) => result.wallMs - seedMs);
      const mean = times.reduce((sum, value) => sum + value, 0) / times.length;
      meanMs.set(run.label, mean);
      // The links' bound on the mean: the crowd needs clients x file; the origin and the clients' uplinks supply it.
      const supplyBytesPerSecond = (originBitsPerSecond + clients * 20e6) / 8;
      const boundMs = Math.max((clients * L3_BYTES) / supplyBytesPerSecond, L3_BYTES / (100e6 / 8)) * 1000;
      console.log(
        `L3 ${run.label}: origin sent ${(cdnBytes / L3_BYTES).toFixed(2)}x the file (${mib(cdnBytes)} MiB); mean completion ${(mean / 1000).toFixed(1)} s (min ${(Math.min(...times) / 1000).toFixed(1)}, max ${(Math.max(...times) / 1000).toFixed(1)}); links' bound ${(boundMs / 1000).toFixed(1)} s, ${(mean / boundMs).toFixed(2)}x it; ${load}`,
      );
      console.log(`  from peers per client (MiB): ${results.map((result) => mib(field(result, 'from_peers_bytes'))).join(', ')}`);
      const cpuSeconds = results.map((result) => result.cpuSeconds ?? Number.NaN);
      const cpuSum = cpuSeconds.reduce((sum, value) => sum + value, 0);
      console.log(
        `  client CPU s: ${cpuSeconds.map((value) => value.toFixed(1)).join(', ')}; together ${cpuSum.toFixed(0)} s, ${((cpuSum / ((Math.max(...results.map((result) => result.wallMs)) / 1000) * cpus().length)) * 100).toFixed(0)}% of the machine's ${cpus().length} cores over the run; serve CPU ${serveCpuSeconds.toFixed(1)} s`,
      );
      console.log(`  HTTP received per client (MiB): ${results.map((result) => mib(Number(result.lastProgress?.http_received_bytes ?? Number.NaN))).join(', ')}`);
      if (run.label === 'swarm') console.log(`  policy decisions per client (servable->HTTP runs / late->HTTP chunks / choked->HTTP chunks / runs yielded to a peer's HTTP): ${results.map(decisionsOf).join(', ')}`);
      if (run.label === 'swarm') console.log(`  ${httpOverlap(results)}`);
      if (run.label === 'swarm') console.log(`  ${meshOf(results)}`);
      console.log(`  ${links}`);
    }
    console.log(`L3: swarm mean / http-only mean = ${((meanMs.get('swarm') ?? Number.NaN) / (meanMs.get('http-only') ?? Number.NaN)).toFixed(2)}`);
  } finally {
    await lab.close();
  }
}

// --- NAT: a crowd of 6 over the NAT kinds, with and without TURN -------------------------

const RANK: Record<string, number> = { host: 1, srflx: 2, relay: 3 };

async function scenarioNat(dir: string): Promise<void> {
  const kinds: Array<HostSpec['nat']> = [undefined, undefined, 'eim', 'eim', 'symmetric', 'symmetric'];
  const names = kinds.map((kind, index) => `${kind ?? 'pub'}${index}`.replace('symmetric', 'sym'));
  console.log(`\nNAT crowd: ${mib(NAT_BYTES)} MiB, 6 clients (100mbit down / 20mbit up): ${names.join(', ')}; CDN 100mbit up; coturn on its own public host; each seeds 30 s after it finishes`);
  // coturn on a host of its own, so the CDN's counters hold only the origin's bytes and the relay's are read apart.
  const hosts: HostSpec[] = [{ name: 'cdn', down: '10gbit', up: '100mbit' }, { name: 'turn', down: '10gbit', up: '10gbit' }, ...kinds.map((nat, index) => ({ name: names[index]!, down: '100mbit', up: '20mbit', ...(nat ? { nat } : {}) }))];
  const lab = await createLab(hosts);
  const coturn = await startCoturn(lab.host('turn'), { secret: TURN_SECRET, port: 3478 });
  try {
    const sha256 = await writeTestFile(join(dir, 'files', 'nat.bin'), NAT_BYTES);
    const runs = [
      { label: 'STUN only', args: ['--stun', coturn.stunUrl] },
      { label: 'STUN + TURN', args: ['--stun', coturn.stunUrl, '--turn', coturn.turnUrl] },
    ];
    for (const [runIndex, run] of runs.entries()) {
      const server = await serveFile(lab.host('cdn'), 'nat.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data-nat-${runIndex}`), port: 8090 + runIndex, extraArgs: run.args, env: { PEERFILL_TURN_SECRET: TURN_SECRET } });
      const before = await lab.host('cdn').counters();
      const relayBefore = await lab.host('turn').counters();
      const cpu = cpuMeter();
      const results = await Promise.all(
        names.map(async (name, index) => {
          await sleep(index * 1000);
          const out = join(dir, `nat-${runIndex}-${name}.bin`);
          const result = await runGet(lab.host(name), server.fileUrl, out, ['--seed', '30'], 300_000);
          await checkFile(result, out, sha256, `NAT ${run.label} ${name}`);
          await rm(out, { force: true });
          return result;
        }),
      );
      const load = cpu();
      const cdnBytes = (await lab.host('cdn').counters()).txBytes - before.txBytes;
      const relayBytes = (await lab.host('turn').counters()).txBytes - relayBefore.txBytes;
      const httpUsed = results.reduce((sum, result) => sum + field(result, 'from_http_bytes'), 0);
      await stop(server.child);
      // A pair connected if either end saw the other; its type is the farthest-reaching one seen.
      const ids = results.map((result) => String(result.done?.peer_id));
      const pairTypes = new Map<string, number>();
      const byKindPair = new Map<string, string[]>();
      for (let i = 0; i < names.length; i++) {
        for (let j = i + 1; j < names.length; j++) {
          const seen = [results[i]!.connectedPeers.get(ids[j]!), results[j]!.connectedPeers.get(ids[i]!)].filter((type) => type !== undefined);
          const type = seen.sort((a, b) => (RANK[b] ?? 0) - (RANK[a] ?? 0))[0] ?? 'none';
          pairTypes.set(type, (pairTypes.get(type) ?? 0) + 1);
          const kindPair = `${kinds[i] ?? 'public'}-${kinds[j] ?? 'public'}`;
          byKindPair.set(kindPair, [...(byKindPair.get(kindPair) ?? []), type]);
        }
      }
      const pairs = (names.length * (names.length - 1)) / 2;
      const share = ['host', 'srflx', 'relay', 'none'].map((type) => `${type} ${pairTypes.get(type) ?? 0}/${pairs} (${(((pairTypes.get(type) ?? 0) / pairs) * 100).toFixed(0)}%)`).join(', ');
      const fromPeers = results.reduce((sum, result) => sum + field(result, 'from_peers_bytes'), 0);
      const offload = 1 - cdnBytes / (names.length * NAT_BYTES);
      console.log(`\nNAT ${run.label}: peer pairs by candidate type: ${share}`);
      console.log(`  by NAT kinds: ${[...byKindPair].map(([kindPair, types]) => `${kindPair} [${types.join(' ')}]`).join('; ')}`);
      console.log(
        `  offload: CDN sent ${mib(cdnBytes)} MiB (clients used ${mib(httpUsed)} MiB of it) for ${names.length} x ${mib(NAT_BYTES)} MiB = ${(offload * 100).toFixed(0)}% offloaded; clients got ${mib(fromPeers)} MiB from peers; the relay sent ${mib(relayBytes)} MiB; coturn ALLOCATE successes so far ${(coturn.log().match(/ALLOCATE processed, success/g) ?? []).length}; ${load}`,
      );
      console.log('client     time s  peers MiB  http MiB  connections');
      results.forEach((result, index) => {
        const downloadMs = result.wallMs - 30_000;
        console.log(`${names[index]!.padEnd(10)} ${(downloadMs / 1000).toFixed(2).padStart(6)}  ${mib(field(result, 'from_peers_bytes')).padStart(9)}  ${mib(field(result, 'from_http_bytes')).padStart(8)}  ${JSON.stringify(result.lastProgress?.connections ?? {})}`);
      });
    }
    console.log("  (a client's time is its exit time less its 30 s of seeding; no RTT or loss: this kernel has no netem)");
  } finally {
    coturn.close();
    await lab.close();
  }
}

async function main(): Promise<number> {
  if (!SUPPORT.isSupported) {
    console.log(`bench/lab skipped: ${SUPPORT.reason}`);
    return 2;
  }
  console.log(`bench/lab: ${cpus().length} cores, node ${process.version}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const dir = await mkdtemp(join(tmpdir(), 'pf-bench-lab-'));
  await mkdir(join(dir, 'files'));
  try {
    if (SCENARIOS.includes('l1')) await scenarioL1(dir);
    if (SCENARIOS.includes('l2')) await scenarioL2(dir);
    if (SCENARIOS.includes('l3')) await scenarioL3(dir);
    if (SCENARIOS.includes('nat')) await scenarioNat(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(failures === 0 ? '\nbench/lab: every download finished with the right SHA-256' : `\nbench/lab: ${failures} FAILURES`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();
