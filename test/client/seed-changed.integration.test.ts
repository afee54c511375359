import { copyFile, mkdir, mkdtemp, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killProcess, runCli, type CliLine, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, publishFile, sha256, type Published } from './fixtures/get-cli.ts';

/**
 * `peerfill seed` of a file that changes on disk while it is seeded, with a `peerfill get`
 * that takes chunks from it: the seeder never sends a chunk that no longer verifies, says
 * which ones it stopped serving, and the leecher ends with the right file.
 */
const FILE_BYTES = 16 * MiB;
const bytes = testBytes(FILE_BYTES, 67);
const fileSha256 = sha256(bytes);

let dir: string;
let published: Published;
const procs: CliProcess[] = [];
const run = (args: string[]): CliProcess => {
  const proc = runCli(args, { cwd: dir });
  procs.push(proc);
  return proc;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-seed-changed-'));
  // A capped origin, so that the leecher takes chunks from the seeder.
  published = await publishFile(dir, bytes, { egressBytesPerSecond: 2 * MiB, announceIntervalSeconds: 2 });
});
afterEach(async () => {
  for (const proc of procs.splice(0)) await killProcess(proc);
});
afterAll(async () => {
  await published?.server.close();
  await rm(dir, { recursive: true, force: true });
});

/** A copy of the published file for the seeder, with an mtime of whole seconds (so that it can be put back exactly). */
async function seederCopy(name: string): Promise<{ path: string; mtime: Date }> {
  await mkdir(join(dir, 'seed'), { recursive: true });
  const path = join(dir, 'seed', name);
  await copyFile(published.path, path);
  const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  await utimes(path, mtime, mtime);
  return { path, mtime };
}

/** Other bytes in place over each of these chunks (the size stays). */
async function overwriteChunks(path: string, indexes: number[]): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    for (const index of indexes) await handle.write(testBytes(published.chunkSize, 1000 + index), 0, published.chunkSize, index * published.chunkSize);
  } finally {
    await handle.close();
  }
}

/** A leecher's run to the end: the file it published, and that no peer ever sent it a bad chunk. */
async function leech(out: string): Promise<CliLine[]> {
  const get = run(['get', `${published.url}`, '-o', out, '--json']);
  expect(await get.exit).toBe(0);
  const lines = get.lines();
  const done = lines.find((line) => line.event === 'done');
  expect(done).toMatchObject({ sha256: fileSha256, total_bytes: FILE_BYTES });
  expect(Number(done?.from_peers_bytes)).toBeGreaterThan(0);
  expect(sha256(await readFile(out))).toBe(fileSha256);
  const warnings = lines.filter((line) => line.event === 'warning').map((line) => line.message);
  expect(warnings).not.toContain('chunk failed SHA-256');
  expect(warnings).not.toContain('peer penalised');
  return lines;
}

describe('peerfill seed of a file that changes on disk', () => {
  it('a chunk that fails when read for an upload (size and mtime kept) is not sent: the seeder warns once per chunk, checks the whole file again, and stops serving every changed chunk', async () => {
    const { path, mtime } = await seederCopy('kept-mtime.bin');
    const seeder = run(['seed', path, '--server', published.server.url, '--file-id', published.fileId, '--json']);
    const seeding = await seeder.waitForLine((line) => line.event === 'seeding', 'the seeder to check its file');
    const chunkCount = FILE_BYTES / published.chunkSize;
    expect(seeding).toMatchObject({ sha256: fileSha256 });

    // Half the chunks change, and the file's size and mtime say nothing of it.
    const changed = Array.from({ length: chunkCount / 2 }, (_, i) => 2 * i + 1);
    await overwriteChunks(path, changed);
    await utimes(path, mtime, mtime);
    // Past the seeder's cache of chunks in use (1 s idle): every upload reads from disk now.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    await leech(join(dir, 'kept-mtime.out'));
    const seederLines = seeder.lines();
    const failed = seederLines.filter((line) => line.event === 'warning' && line.chunk !== undefined);
    expect(failed.length).toBeGreaterThan(0);
    for (const line of failed) expect(line).toMatchObject({ message: 'a chunk read for an upload failed SHA-256: no longer served', path });
    const failedChunks = failed.map((line) => line.chunk as number);
    expect(new Set(failedChunks).size).toBe(failedChunks.length);
    const rechecks = seederLines.filter((line) => line.event === 'file_changed');
    expect(rechecks.length).toBeGreaterThan(0);
    expect(rechecks[0]).toMatchObject({ path, reason: `chunk ${failedChunks[0]} failed SHA-256 when read for an upload`, chunks_verified: chunkCount - changed.length, chunk_count: chunkCount });
    const lost = [...failedChunks, ...rechecks.flatMap((line) => line.chunks_lost as number[])].sort((a, b) => a - b);
    expect(lost).toEqual(changed);

    seeder.child.kill('SIGINT');
    expect(await seeder.exit).toBe(0);
  }, 90_000);

  it('a change of the mtime is noticed without any upload: the chunks that no longer verify are said and never served', async () => {
    const { path } = await seederCopy('new-mtime.bin');
    const seeder = run(['seed', path, '--server', published.server.url, '--file-id', published.fileId, '--json']);
    await seeder.waitForLine((line) => line.event === 'seeding', 'the seeder to check its file');
    const chunkCount = FILE_BYTES / published.chunkSize;
    const changed = [0, 3, chunkCount - 1];
    await overwriteChunks(path, changed);
    const recheck = await seeder.waitForLine((line) => line.event === 'file_changed', 'the seeder to notice the change');
    expect(recheck).toMatchObject({ path, reason: 'its mtime changed', chunks_verified: chunkCount - changed.length, chunk_count: chunkCount, chunks_lost: changed, chunks_found: [] });

    await leech(join(dir, 'new-mtime.out'));
    // Nothing that was withdrawn was read for an upload, so no chunk failed on a read.
    expect(seeder.lines().filter((line) => line.event === 'warning' && line.chunk !== undefined)).toEqual([]);

    // The file put back: the chunks are found and offered again.
    await writeFile(path, bytes);
    const back = await seeder.waitForLine((line) => line.event === 'file_changed' && line !== recheck, 'the seeder to notice the file put back');
    expect(back).toMatchObject({ path, reason: 'its mtime changed', chunks_verified: chunkCount, chunks_lost: [], chunks_found: changed });
    seeder.child.kill('SIGINT');
    expect(await seeder.exit).toBe(0);
  }, 90_000);
});
