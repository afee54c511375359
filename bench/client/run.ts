// HTTP-only download of one big file from a real `peerfill serve` (loopback):
// `peerfill get --no-peers` (per-chunk SHA-256, whole-file SHA-256, state file: all on)
// against `aria2c -x8 -s8` and `curl`, interleaved, each repeated. Prints wall time,
// throughput and peak RSS with ratios vs aria2c; every output's SHA-256 is checked and a
// failed download is printed as a failure. First, start-up: the same tools fetch a 4 KiB
// file (one chunk), interleaved, so wall time and peak RSS are each process's fixed cost.
//   node --import tsx bench/client/run.ts
//   PF_BENCH_SIZE_MIB (2048)  PF_BENCH_ROUNDS (3)  PF_BENCH_STARTUP_ROUNDS (5)  PF_BENCH_TOOLS (peerfill,aria2c,curl)
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BENCH_KEYS, CLI, MiB, freePort, loadNow, machineLine, median, sha256File, spread, startServe, timed, writeTestFile, type TimedResult } from './procs.ts';

const SIZE_BYTES = Number(process.env.PF_BENCH_SIZE_MIB ?? 2048) * MiB;
const ROUNDS = Number(process.env.PF_BENCH_ROUNDS ?? 3);
const STARTUP_ROUNDS = Number(process.env.PF_BENCH_STARTUP_ROUNDS ?? 5);
const TINY_BYTES = 4096;
const TOOLS = (process.env.PF_BENCH_TOOLS ?? 'peerfill,aria2c,curl').split(',');
const LIMIT_MS = 10 * 60_000;
const run = promisify(execFile);

interface Sample {
  tool: string;
  round: number;
  isOk: boolean;
  wallMs: number;
  peakRssBytes: number | undefined;
  cpuSeconds: number | undefined;
  detail: string;
  load: string;
}

const dir = await mkdtemp(join(tmpdir(), 'pf-bench-client-'));
const filesDir = join(dir, 'files');
const dataDir = join(dir, 'data');
const outDir = join(dir, 'out');
await mkdir(filesDir);
await mkdir(outDir);
let stopServer: (() => Promise<void>) | undefined;
const cleanup = async () => {
  await stopServer?.();
  await rm(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

try {
  console.log(`bench/client: ${SIZE_BYTES / MiB} MiB over HTTP on loopback, ${ROUNDS} rounds interleaved; ${machineLine()}`);
  const sha = await writeTestFile(join(filesDir, 'big.bin'), SIZE_BYTES);
  // A one-chunk file: the start-up time and fixed RSS of each tool, whatever the file size.
  const tinySha = await writeTestFile(join(filesDir, 'tiny.bin'), TINY_BYTES);
  const port = await freePort();
  const server = await startServe({ filesDir, dataDir, port, expectFiles: 2 });
  stopServer = () => server.stop();
  const { files } = (await (await fetch(`${server.url}/files`)).json()) as { files: Array<{ file_id: string; name: string }> };
  const fileId = files.find((f) => f.name === 'big.bin')!.file_id;
  const tinyId = files.find((f) => f.name === 'tiny.bin')!.file_id;
  const manifest = (await (await fetch(`${server.url}/files/${fileId}/manifest`)).json()) as { chunk_size: number; chunks: string[] };
  const signUrl = async (id: string) =>
    (
      await run(process.execPath, [CLI, 'sign', '--files', filesDir, '--data-dir', dataDir, '--port', String(port), '--expires-in', '86400', '--', id], {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PEERFILL_SIGNING_KEYS: BENCH_KEYS },
      })
    ).stdout.trim();
  const signedUrl = await signUrl(fileId);
  const tinySignedUrl = await signUrl(tinyId);
  console.log(`server ${server.url}, file ${fileId}, ${manifest.chunks.length} chunks of ${manifest.chunk_size / MiB} MiB; signed URL from \`peerfill sign\` (query not printed)`);

  const commandsFor = (id: string, url: string): Record<string, (out: string) => [string, string[]]> => ({
    peerfill: (out) => [process.execPath, [CLI, 'get', `${server.url}/files/${id}`, '-o', out, '--no-peers', '--json']],
    aria2c: (out) => ['aria2c', ['-x8', '-s8', '-q', '--allow-overwrite=true', '--auto-file-renaming=false', '-d', outDir, '-o', out.slice(outDir.length + 1), url]],
    curl: (out) => ['curl', ['-sS', '-f', '-o', out, url]],
  });
  await startUp(commandsFor(tinyId, tinySignedUrl), tinySha);
  const commands = commandsFor(fileId, signedUrl);
  const samples: Sample[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Rotate the order so no tool always runs first (cold) or last.
    const order = TOOLS.map((_, i) => TOOLS[(i + round - 1) % TOOLS.length]!);
    for (const tool of order) {
      const out = join(outDir, `${tool}-${round}.bin`);
      const [command, args] = commands[tool]!(out);
      const load = loadNow();
      const result: TimedResult = await timed(command, args, { limitMs: LIMIT_MS });
      const got = await sha256File(out);
      const isOk = result.exitCode === 0 && got === sha;
      let detail = '';
      if (tool === 'peerfill') {
        const done = result.stdout.split('\n').find((line) => line.startsWith('{"event":"done"'));
        detail = done ? `engine reported sha256 ${(JSON.parse(done) as { sha256: string }).sha256.slice(0, 12)}` : 'no done event';
      }
      if (!isOk) detail = `FAILED: exit ${result.exitCode}, sha256 ${got?.slice(0, 12) ?? 'missing'} (want ${sha.slice(0, 12)}); ${result.stderrTail.replace(/\s+/g, ' ').slice(-300)}`;
      const sample = { tool, round, isOk, wallMs: result.wallMs, peakRssBytes: result.peakRssBytes, cpuSeconds: result.cpuSeconds, detail, load };
      samples.push(sample);
      console.log(
        `round ${round} ${tool.padEnd(8)} ${isOk ? 'ok    ' : 'FAILED'} wall ${(result.wallMs / 1000).toFixed(2).padStart(6)} s  ${(SIZE_BYTES / MiB / (result.wallMs / 1000)).toFixed(0).padStart(5)} MiB/s  cpu ${(result.cpuSeconds ?? Number.NaN).toFixed(2).padStart(5)} s  peak RSS ${((result.peakRssBytes ?? 0) / 1e6).toFixed(0).padStart(4)} MB  load ${load}  ${detail}`,
      );
      await rm(out, { force: true });
    }
  }

  const summary = TOOLS.map((tool) => {
    const mine = samples.filter((s) => s.tool === tool);
    const ok = mine.filter((s) => s.isOk);
    return {
      tool,
      failures: mine.length - ok.length,
      walls: ok.map((s) => s.wallMs / 1000),
      rss: ok.map((s) => (s.peakRssBytes ?? 0) / 1e6),
      cpu: ok.map((s) => s.cpuSeconds ?? Number.NaN),
    };
  });
  const aria = summary.find((s) => s.tool === 'aria2c');
  const ariaWall = aria && aria.walls.length > 0 ? median(aria.walls) : undefined;
  const ariaRss = aria && aria.rss.length > 0 ? median(aria.rss) : undefined;
  const ariaCpu = aria && aria.cpu.length > 0 ? median(aria.cpu) : undefined;
  console.log(`\nsummary (median of successful runs, spread min..max), ${SIZE_BYTES / MiB} MiB:`);
  console.log(`tool      ok/runs  wall s (spread)          MiB/s   peak RSS MB (spread)   wall vs aria2c  RSS vs aria2c  CPU s (vs aria2c)`);
  for (const s of summary) {
    if (s.walls.length === 0) {
      console.log(`${s.tool.padEnd(9)} 0/${s.failures}     every run FAILED`);
      continue;
    }
    const wall = median(s.walls);
    const rss = median(s.rss);
    console.log(
      `${s.tool.padEnd(9)} ${`${s.walls.length}/${s.walls.length + s.failures}`.padEnd(8)} ${wall.toFixed(2).padStart(6)} (${spread(s.walls, (v) => v.toFixed(2))})`.padEnd(43) +
        `${(SIZE_BYTES / MiB / wall).toFixed(0).padStart(5)}   ${rss.toFixed(0).padStart(5)} (${spread(s.rss, (v) => v.toFixed(0))})`.padEnd(31) +
        `${ariaWall ? `${(wall / ariaWall).toFixed(2)}x` : '-'}`.padStart(8) +
        `${ariaRss ? `${(rss / ariaRss).toFixed(2)}x` : '-'}`.padStart(15) +
        `${median(s.cpu).toFixed(2)} (${ariaCpu ? `${(median(s.cpu) / ariaCpu).toFixed(2)}x` : '-'})`.padStart(19),
    );
  }
  const ours = summary.find((s) => s.tool === 'peerfill');
  if (ours && ours.walls.length > 0 && ariaWall) {
    const wallRatio = median(ours.walls) / ariaWall;
    const rss = median(ours.rss);
    console.log(`targets: wall ${wallRatio.toFixed(2)}x aria2c (target <= 1.00: ${wallRatio <= 1 ? 'met' : 'NOT met'}); peak RSS ${rss.toFixed(0)} MB (target <= 150: ${Math.max(...ours.rss) <= 150 ? 'met in every run' : rss <= 150 ? 'met at the median' : 'NOT met'})`);
  }
  console.log(`load average at the end: ${machineLine().replace(/^.*load average /, '')}`);
  if (samples.some((s) => !s.isOk)) process.exitCode = 1;
} finally {
  await cleanup();
}

/**
 * Start-up: each tool fetches the 4 KiB file STARTUP_ROUNDS times, interleaved (order rotated),
 * under time(1). Wall time is from spawn to exit, so it is what a user waits for a small file.
 */
async function startUp(commands: Record<string, (out: string) => [string, string[]]>, sha: string): Promise<void> {
  const results = new Map<string, { wallS: number[]; rssMb: number[]; cpuS: number[]; failures: number }>(TOOLS.map((tool) => [tool, { wallS: [], rssMb: [], cpuS: [], failures: 0 }]));
  for (let round = 1; round <= STARTUP_ROUNDS; round++) {
    const order = TOOLS.map((_, i) => TOOLS[(i + round - 1) % TOOLS.length]!);
    for (const tool of order) {
      const out = join(outDir, `tiny-${tool}-${round}.bin`);
      const [command, args] = commands[tool]!(out);
      const result = await timed(command, args, { limitMs: 60_000 });
      const entry = results.get(tool)!;
      if (result.exitCode === 0 && (await sha256File(out)) === sha) {
        entry.wallS.push(result.wallMs / 1000);
        entry.rssMb.push((result.peakRssBytes ?? Number.NaN) / 1e6);
        entry.cpuS.push(result.cpuSeconds ?? Number.NaN);
      } else {
        entry.failures++;
        console.log(`start-up round ${round} ${tool} FAILED: exit ${result.exitCode}; ${result.stderrTail.replace(/\s+/g, ' ').slice(-300)}`);
      }
      await rm(out, { force: true });
    }
  }
  const aria = results.get('aria2c');
  const ariaWall = aria && aria.wallS.length > 0 ? median(aria.wallS) : undefined;
  const ariaRss = aria && aria.rssMb.length > 0 ? median(aria.rssMb) : undefined;
  console.log(`\nstart-up: get of a ${TINY_BYTES / 1024} KiB file, ${STARTUP_ROUNDS} rounds interleaved (median, spread min..max); load ${loadNow()}`);
  console.log(`tool      ok/runs  wall s (spread)       peak RSS MB (spread)  CPU s   wall vs aria2c  RSS vs aria2c`);
  for (const [tool, r] of results) {
    if (r.wallS.length === 0) {
      console.log(`${tool.padEnd(9)} 0/${r.failures}     every run FAILED`);
      continue;
    }
    const wall = median(r.wallS);
    const rss = median(r.rssMb);
    console.log(
      `${tool.padEnd(9)} ${`${r.wallS.length}/${r.wallS.length + r.failures}`.padEnd(8)} ${wall.toFixed(3).padStart(6)} (${spread(r.wallS, (v) => v.toFixed(3))})`.padEnd(40) +
        `${rss.toFixed(0).padStart(5)} (${spread(r.rssMb, (v) => v.toFixed(0))})`.padEnd(22) +
        `${median(r.cpuS).toFixed(2).padStart(5)}` +
        `${ariaWall ? `${(wall / ariaWall).toFixed(2)}x` : '-'}`.padStart(17) +
        `${ariaRss ? `${(rss / ariaRss).toFixed(2)}x` : '-'}`.padStart(15),
    );
  }
  console.log('');
  if ([...results.values()].some((r) => r.failures > 0)) process.exitCode = 1;
}
