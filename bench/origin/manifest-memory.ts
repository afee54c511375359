/**
 * Peak RSS of building a manifest for a large file with the real CLI (`peerfill add`),
 * against `sha256sum` of the same file in the same run. The file is sparse (reads as zeros),
 * so it costs no disk; hashing work and memory behaviour are the same as for real data.
 *
 *   node --import tsx bench/origin/manifest-memory.ts [--gib 10]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '10' } } });
const SIZE_BYTES = Number(values.gib) * 1024 ** 3;
const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;

interface Measured {
  wallS: number;
  peakRssMb: number;
  /** At the largest RSS sampled from /proc (every 50 ms): anonymous memory (heaps, buffers, malloc) and file-backed pages (the node binary, code). */
  anonMb: number;
  fileMb: number;
  exitCode: number | null;
  stdout: string;
}

const kbField = (status: string, name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);

/** Run under GNU time -v and read its wall clock and maximum resident set size; sample the command's /proc status meanwhile. */
async function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const child = spawn('/usr/bin/time', ['-v', command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (piece: Buffer) => (stdout += piece.toString()));
  child.stderr.on('data', (piece: Buffer) => (stderr += piece.toString()));
  let best = { rss: 0, anon: Number.NaN, file: Number.NaN };
  const sampler = setInterval(() => {
    void (async () => {
      const pid = (await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '')).trim().split(' ')[0];
      if (!pid) return;
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const rss = kbField(status, 'VmRSS');
      if (rss > best.rss) best = { rss, anon: kbField(status, 'RssAnon'), file: kbField(status, 'RssFile') + kbField(status, 'RssShmem') };
    })();
  }, 50);
  const exitCode = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearInterval(sampler);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(stderr);
  return {
    wallS: wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : Number.NaN,
    peakRssMb: rss ? Number(rss[1]) / 1024 : Number.NaN,
    anonMb: best.anon / 1024,
    fileMb: best.file / 1024,
    exitCode,
    stdout,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'pf-manifest-mem-'));
try {
  const sparse = async (name: string, sizeBytes: number) => {
    const path = join(dir, name);
    const handle = await open(path, 'w');
    await handle.truncate(sizeBytes);
    await handle.close();
    return path;
  };
  const path = await sparse('big.img', SIZE_BYTES);
  // The fixed cost: node itself, and `peerfill add` of a file just large enough for the hash worker.
  const small = await sparse('small.img', 16 * 1024 ** 2);
  const addEnv = { ...process.env, PEERFILL_LOG_LEVEL: 'warn' };
  // The CLI rebuilds its cached bundle when a source changed (that run loads esbuild): not measured.
  await timed(process.execPath, [CLI, '--help']);
  const nodeAlone = await timed(process.execPath, ['-e', '0']);
  const addSmall = await timed(process.execPath, [CLI, 'add', small, '--data-dir', join(dir, 'data-small'), '--files', join(dir)], addEnv);
  const reference = await timed('sha256sum', [path]);
  const ours = await timed(process.execPath, [CLI, 'add', path, '--data-dir', join(dir, 'data'), '--files', join(dir)], addEnv);
  const expected = reference.stdout.split(' ')[0];
  const manifest = ours.stdout.trim().split('\n').pop() ?? '';
  const isRight = ours.exitCode === 0 && manifest.includes(`"sha256":"${expected}"`);
  const row = (label: string, m: Measured) =>
    `${label.padEnd(28)}${m.wallS.toFixed(2).padStart(8)}${m.peakRssMb.toFixed(1).padStart(14)}${m.anonMb.toFixed(1).padStart(10)}${m.fileMb.toFixed(1).padStart(14)}`;
  console.log(
    [
      `manifest build memory (bench/origin/manifest-memory.ts): ${values.gib} GiB sparse file; load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}; node ${process.version}; ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`,
      `${''.padEnd(28)}${'wall s'.padStart(8)}${'peak RSS MB'.padStart(14)}${'anon MB'.padStart(10)}${'file MB'.padStart(14)}   (anon/file: /proc at the largest sampled RSS)`,
      row('node -e 0', nodeAlone),
      row('peerfill add, 16 MiB', addSmall),
      row(`sha256sum, ${values.gib} GiB`, reference),
      row(`peerfill add, ${values.gib} GiB`, ours),
      `peerfill add vs sha256sum wall: ${(ours.wallS / reference.wallS).toFixed(2)}x; growth over the 16 MiB add: ${(ours.peakRssMb - addSmall.peakRssMb).toFixed(1)} MB`,
      `whole-file SHA-256 agrees with sha256sum: ${isRight ? 'yes' : `NO (exit ${ours.exitCode}; ${manifest.slice(0, 200)})`}`,
      `target: peak RSS under ~100 MB for 10 GiB: ${ours.peakRssMb < 100 ? 'MET' : 'MISSED'}`,
    ].join('\n'),
  );
  if (!isRight) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
