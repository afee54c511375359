// Process helpers shared by bench/client and bench/swarm: a real `peerfill serve`, tools run
// under /usr/bin/time -v (wall time and peak RSS), streaming SHA-256 of outputs, statistics.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';

export { freePort } from '../../test/support/net.ts';

export const MiB = 1024 * 1024;
export const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
export const BENCH_KEYS = 'bench:bench-secret-0123456789abcdef';

export function machineLine(): string {
  return `machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? '?'}), node ${process.version}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`;
}

export const loadNow = (): string => loadavg()[0]!.toFixed(2);

/** A file of `sizeBytes` incompressible bytes (1 MiB random block, numbered); returns its SHA-256. */
export async function writeTestFile(path: string, sizeBytes: number): Promise<string> {
  const block = randomBytes(MiB);
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let offset = 0; offset < sizeBytes; offset += MiB) {
      block.writeUInt32BE(offset / MiB, 0);
      const piece = block.subarray(0, Math.min(MiB, sizeBytes - offset));
      hash.update(piece);
      await file.write(piece);
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

export async function sha256File(path: string): Promise<string | undefined> {
  try {
    const hash = createHash('sha256');
    for await (const piece of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(piece as Buffer);
    return hash.digest('hex');
  } catch {
    return undefined;
  }
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `peerfill serve` as its own process; resolves once /files lists `expectFiles` files. */
export async function startServe(options: { expectFiles?: number; filesDir: string; dataDir: string; host?: string; port: number; egressBytesPerSecond?: number; publicUrl?: string; extraEnv?: Record<string, string>; wrap?: string[] }): Promise<ServeProcess> {
  const host = options.host ?? '127.0.0.1';
  const args = [CLI, 'serve', '--files', options.filesDir, '--data-dir', options.dataDir, '--host', host, '--port', String(options.port), '--log-level', 'warn', '--announce-interval', '5'];
  if (options.egressBytesPerSecond) args.push('--egress-limit', String(options.egressBytesPerSecond));
  if (options.publicUrl) args.push('--public-url', options.publicUrl);
  const wrap = options.wrap ?? [];
  const child = spawn(wrap[0] ?? process.execPath, wrap.length > 0 ? [...wrap.slice(1), process.execPath, ...args] : args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PEERFILL_SIGNING_KEYS: BENCH_KEYS, ...options.extraEnv },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://${host}:${options.port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`peerfill serve exited (${child.exitCode})`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('peerfill serve did not list the file within 120 s');
    }
    try {
      const body = (await (await fetch(`${url}/files`)).json()) as { files?: unknown[] };
      if ((body.files?.length ?? 0) >= (options.expectFiles ?? 1)) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface TimedResult {
  exitCode: number | null;
  wallMs: number;
  peakRssBytes: number | undefined;
  /** User + system CPU seconds of the command and its threads (time(1)); less noisy than wall time on a shared machine. */
  cpuSeconds: number | undefined;
  stderrTail: string;
  stdout: string;
}

/** Run a command under /usr/bin/time -v; wall time measured here, peak RSS from time(1). */
export function timed(command: string, args: string[], options: { limitMs: number; env?: Record<string, string>; cwd?: string }): Promise<TimedResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-v', command, ...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (piece: Buffer) => {
      stderr = (stderr + piece.toString()).slice(-20_000);
    });
    child.stdout.on('data', (piece: Buffer) => {
      stdout = (stdout + piece.toString()).slice(-200_000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      const wallMs = performance.now() - started;
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      const exit = /Exit status: (\d+)/.exec(stderr);
      const user = /User time \(seconds\): ([\d.]+)/.exec(stderr);
      const system = /System time \(seconds\): ([\d.]+)/.exec(stderr);
      const cpuSeconds = user && system ? Number(user[1]) + Number(system[1]) : undefined;
      const tail = stderr.split('\n').filter((line) => !line.startsWith('\t') && !line.startsWith('Command ')).join('\n').trim().slice(-600);
      resolve({ exitCode: exit ? Number(exit[1]) : code, wallMs, peakRssBytes: rss ? Number(rss[1]) * 1024 : undefined, cpuSeconds, stderrTail: tail, stdout });
    });
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** "min..max" with the given formatter. */
export function spread(values: number[], format: (v: number) => string): string {
  return values.length === 0 ? '-' : `${format(Math.min(...values))}..${format(Math.max(...values))}`;
}
