import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readStateFile } from '../../client/node/state-file.ts';
import { Bitfield } from '../../protocol/index.ts';
import { killProcess, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, finished, getCli, lineOf, publishFile, sha256, type Published } from './fixtures/get-cli.ts';

/**
 * `peerfill get` against a disk that fails: a 20 MiB tmpfs (filled up mid-download, or too
 * small from the start), a read-only mount and a missing folder. Mounting needs root, which
 * `npm test` runs as (see test/run.sh).
 */
let dir: string;
let small: string;
let readOnly: string;
const published: Published[] = [];
let child: CliProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-storage-'));
  small = join(dir, 'small');
  readOnly = join(dir, 'ro');
  await mkdir(small);
  await mkdir(readOnly);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', small]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
});
afterAll(async () => {
  for (const mount of [small, readOnly]) execFileSync('umount', [mount]);
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await killProcess(child);
  for (const { server } of published.splice(0)) await server.close();
  for (const name of await readdir(small)) await rm(join(small, name), { force: true });
});

async function publish(bytes: Uint8Array, egressBytesPerSecond = 0): Promise<Published> {
  const files = await mkdtemp(join(dir, 'pub-'));
  const one = await publishFile(files, bytes, { egressBytesPerSecond });
  published.push(one);
  return one;
}

describe('peerfill get on a failing disk', () => {
  it('disk full mid-download: exit 6 at once naming the cause, nothing refetched, and the rerun keeps every chunk written', async () => {
    const bytes = testBytes(16 * MiB, 61);
    const { server, url, chunkSize } = await publish(bytes, 4 * MiB);
    const out = join(small, 'out.bin');
    let chunks = 0;
    let filled = false;
    child = getCli([url, '-o', out, '--no-peers'], {
      onLine: (line) => {
        if (line.event === 'chunk') chunks++;
        // A quarter in, something else takes all but 1 MiB of the disk.
        if (chunks >= 16 && !filled) {
          filled = true;
          void statfs(small).then((stats) => writeFile(join(small, 'filler'), new Uint8Array(Math.max(0, stats.bavail * stats.bsize - MiB))));
        }
      },
    });
    const first = await finished(child);
    expect(first.code).toBe(6);
    const error = lineOf(first.lines, 'error')!;
    expect(error.code).toBe('PF_ERR_STORAGE_FAILED');
    expect(String(error.message)).toMatch(/^disk full: [\d.]+ MiB free at .*small, [\d.]+ MiB needed/);
    const sentOnFirstRun = server.dataPlaneBytes();
    // One pass at most: what could not be written was not asked for again (it was 2.6x the file in 8 retried runs).
    expect(sentOnFirstRun).toBeLessThan(bytes.length);

    // The state records exactly the chunks that reached the disk: every one the run reported stored.
    const state = await readStateFile(`${out}.part.state`);
    if (state.kind !== 'valid') throw new Error(`state after ENOSPC: ${state.kind}`);
    const durable = Bitfield.fromBase64Url(state.body.have!, bytes.length / chunkSize)!.count();
    expect(durable).toBe(chunks);

    await rm(join(small, 'filler'));
    child = getCli([url, '-o', out, '--no-peers']);
    const second = await finished(child);
    expect(second.code).toBe(0);
    const done = lineOf(second.lines, 'done')!;
    console.log(`disk full: origin sent ${(sentOnFirstRun / MiB).toFixed(1)} MiB of ${bytes.length / MiB} before exit 6; ${chunks} chunks stored, resumed_bytes ${String(done.resumed_bytes)} on the rerun`);
    expect(Number(done.resumed_bytes)).toBe(durable * chunkSize);
    expect(Number(done.from_http_bytes)).toBe(bytes.length - durable * chunkSize);
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
  });

  it('a file larger than the free space: exit 6 before a byte is fetched, and nothing left behind', async () => {
    const bytes = testBytes(24 * MiB, 62);
    const { server, url } = await publish(bytes);
    const out = join(small, 'big.bin');
    child = getCli([url, '-o', out, '--no-peers']);
    const { code, lines } = await finished(child);
    expect(code).toBe(6);
    expect(String(lineOf(lines, 'error')!.message)).toMatch(/^disk full: (19|20)\.\d MiB free at .*small, 24\.0 MiB needed/);
    expect(server.dataPlaneBytes()).toBe(0);
    expect(await readdir(small)).toEqual([]);
  });

  it('a read-only file system and a missing folder: exit 6 with the cause and the path', async () => {
    const bytes = testBytes(MiB, 63);
    const { server, url } = await publish(bytes);
    child = getCli([url, '-o', join(readOnly, 'out.bin'), '--no-peers']);
    const ro = await finished(child);
    expect(ro.code).toBe(6);
    expect(String(lineOf(ro.lines, 'error')!.message)).toBe(`read-only file system: ${join(readOnly, 'out.bin')} (EROFS)`);

    child = getCli([url, '-o', join(dir, 'no', 'such', 'out.bin'), '--no-peers']);
    const missing = await finished(child);
    expect(missing.code).toBe(6);
    expect(String(lineOf(missing.lines, 'error')!.message)).toBe(`no such folder: ${join(dir, 'no', 'such')} (ENOENT)`);
    expect(server.dataPlaneBytes()).toBe(0);
  });
});
