/**
 * Peak RSS of building a manifest for a large file with the real CLI (`peerfill add`),
 * against `sha256sum` of the same file in the same run. The file is sparse (reads as zeros),
 * so it costs no disk; hashing work and memory behaviour are the same as for real data.
 *
 *   node --import tsx bench/origin/manifest-memory.ts [--gib 10]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '10' } } });
const SIZE_BYTES = Number(values.gib) * 1024 ** 3;
const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;

interface Measured {
  wallS: number;
  peakRssMb: number;
  exitCode: number | null;
  stdout: string;
}

/** Run under GNU time -v and read its wall clock and maximum resident set size. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Measured {
  const result = spawnSync('/usr/bin/time', ['-v', command, ...args], { encoding: 'utf8', env, maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 });
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(result.stderr);
  return {
    wallS: wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : Number.NaN,
    peakRssMb: rss ? Number(rss[1]) / 1024 : Number.NaN,
    exitCode: result.status,
    stdout: result.stdout,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'pf-manifest-mem-'));
try {
  const path = join(dir, 'big.img');
  const handle = await open(path, 'w');
  await handle.truncate(SIZE_BYTES);
  await handle.close();
  const reference = timed('sha256sum', [path]);
  const ours = timed(process.execPath, [CLI, 'add', path, '--data-dir', join(dir, 'data'), '--files', join(dir)], { ...process.env, PEERFILL_LOG_LEVEL: 'warn' });
  const expected = reference.stdout.split(' ')[0];
  const manifest = ours.stdout.trim().split('\n').pop() ?? '';
  const isRight = ours.exitCode === 0 && manifest.includes(`"sha256":"${expected}"`);
  console.log(
    [
      `manifest build memory (bench/origin/manifest-memory.ts): ${values.gib} GiB sparse file; load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}; node ${process.version}; ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`,
      `${''.padEnd(28)}${'sha256sum'.padStart(12)}${'peerfill add'.padStart(16)}${'ratio'.padStart(10)}`,
      `${'wall s'.padEnd(28)}${reference.wallS.toFixed(2).padStart(12)}${ours.wallS.toFixed(2).padStart(16)}${`${(ours.wallS / reference.wallS).toFixed(2)}x`.padStart(10)}`,
      `${'peak RSS MB'.padEnd(28)}${reference.peakRssMb.toFixed(1).padStart(12)}${ours.peakRssMb.toFixed(1).padStart(16)}`,
      `whole-file SHA-256 agrees with sha256sum: ${isRight ? 'yes' : `NO (exit ${ours.exitCode}; ${manifest.slice(0, 200)})`}`,
      `target: peak RSS under ~100 MB for 10 GiB: ${ours.peakRssMb < 100 ? 'MET' : 'MISSED'}`,
    ].join('\n'),
  );
  if (!isRight) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
