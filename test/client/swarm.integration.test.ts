import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Download } from '../../client/download.ts';
import { createClient, type ClientOptions } from '../../client/index.ts';
import { FileChunkStore } from '../../client/node/file-chunk-store.ts';
import { nodeClientOptions } from '../../client/node/node-runtime.ts';
import { SeedFileStore } from '../../client/node/seed-file-store.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { startTestServer, type TestServer } from './fixtures/server.ts';

const MiB = 1024 * 1024;
let dir: string;
let server: TestServer | undefined;
const downloads: Download[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-swarm-'));
  await mkdir(join(dir, 'files'));
});
afterEach(async () => {
  for (const download of downloads.splice(0)) await download.destroy().catch(() => undefined);
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

const options = (): ClientOptions => ({ ...nodeClientOptions(), eagerAnnounceMs: 1000, chokeIntervalMs: 2000 });

async function publish(bytes: Uint8Array, egressBytesPerSecond?: number): Promise<{ fileId: string; path: string }> {
  const path = join(dir, 'files', 'payload.bin');
  await writeFile(path, bytes);
  server = await startTestServer({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), egressBytesPerSecond, announceIntervalSeconds: 2 });
  const list = (await (await fetch(`${server.url}/files`)).json()) as { files: Array<{ file_id: string }> };
  return { fileId: list.files[0]!.file_id, path };
}

function finished(download: Download): Promise<{ sha256: string; fromPeersBytes: number }> {
  return new Promise((resolve, reject) => {
    download.on('done', ({ sha256, progress }) => resolve({ sha256, fromPeersBytes: progress.fromPeersBytes }));
    download.on('error', reject);
  });
}

function seeding(download: Download): Promise<void> {
  return new Promise((resolve, reject) => {
    download.on('status', ({ status }) => status === 'seeding' && resolve());
    download.on('error', reject);
  });
}

describe('swarm against the real origin + tracker', () => {
  it('1 seeder + 5 leechers: every file right, origin sends < 2x the file', async () => {
    const bytes = testBytes(16 * MiB, 21);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const { fileId, path } = await publish(bytes, 8 * MiB);
    const url = `${server!.url}/${fileId}`;
    const seeder = createClient({ ...options(), seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY }).download(url, new SeedFileStore(path));
    downloads.push(seeder);
    const seeded = seeding(seeder);
    void seeder.start();
    await seeded;
    const leechers = Array.from({ length: 5 }, (_, i) =>
      createClient({ ...options(), seedAfterDoneMs: 60_000 }).download(url, new FileChunkStore(join(dir, `out-${i}.bin`))),
    );
    downloads.push(...leechers);
    const results = leechers.map(finished);
    for (const leecher of leechers) void leecher.start();
    const done = await Promise.all(results);
    for (const [i, result] of done.entries()) {
      expect(result.sha256).toBe(sha);
      expect(createHash('sha256').update(await readFile(join(dir, `out-${i}.bin`))).digest('hex')).toBe(sha);
    }
    const originBytes = server!.dataPlaneBytes();
    console.log(`swarm: origin sent ${(originBytes / bytes.length).toFixed(2)}x the file; from peers per leecher: ${done.map((d) => (d.fromPeersBytes / MiB).toFixed(1)).join(', ')} MiB`);
    expect(originBytes).toBeLessThan(2 * bytes.length);
  }, 120_000);
});
