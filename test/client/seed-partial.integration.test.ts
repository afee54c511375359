import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killProcess, runCli, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, publishFile, type Published } from './fixtures/get-cli.ts';

/** `peerfill seed` of a copy that is not (or no longer) the published file. */
let dir: string;
let published: Published | undefined;
let seeder: CliProcess | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-seed-'));
});
afterEach(async () => {
  await killProcess(seeder);
  await published?.server.close();
  published = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('peerfill seed of a partial or changing copy', () => {
  it('a truncated copy seeds its intact leading chunks; a change on disk is noticed and said, and only what still verifies is served', async () => {
    const bytes = testBytes(8 * MiB, 91);
    published = await publishFile(dir, bytes);
    const { server, fileId, chunkSize } = published;
    const copy = join(dir, 'copy.bin');
    // 19 whole chunks and part of the 20th.
    await writeFile(copy, bytes.subarray(0, 19 * chunkSize + 1000));
    seeder = runCli(['seed', copy, '--server', server.url, '--file-id', fileId, '--json'], { env: { PEERFILL_SERVER_URL: server.url } });
    const seeding = await seeder.waitForLine((line) => line.event === 'seeding', 'the partial copy to be seeded');
    expect(seeding).toMatchObject({ chunks_verified: 19, chunk_count: bytes.length / chunkSize });

    await truncate(copy, 5 * chunkSize);
    const changed = await seeder.waitForLine((line) => line.event === 'file_changed', 'the seeder to notice the truncation');
    expect(changed).toMatchObject({ reason: `its size changed from ${19 * chunkSize + 1000} to ${5 * chunkSize} bytes`, chunks_verified: 5 });
    seeder.child.kill('SIGHUP');
    expect(await seeder.exit).toBe(0);
  });
});
