// The hybrid policy on shaped links, with real `peerfill serve`, `seed` and `get` processes in
// lab hosts. Times are only compared as ratios measured in the same test (wide margins).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLab, labSupport, type Lab } from './lab.ts';
import { runGet, serveFile, startSeed, type GetResult } from './peerfill.ts';

const MiB = 1024 * 1024;
const support = labSupport();
if (!support.isSupported) console.log(`test/lab: hybrid policy lab tests skipped: ${support.reason}`);

let dir: string;
let lab: Lab | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-lab-'));
  await mkdir(join(dir, 'files'));
});
afterEach(async () => {
  await lab?.close();
  lab = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function publish(name: string, size: number): Promise<{ path: string; sha256: string }> {
  const bytes = randomBytes(size);
  const path = join(dir, 'files', name);
  await writeFile(path, bytes);
  return { path, sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function sha256Of(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

function num(result: GetResult, field: string): number {
  const value = result.done?.[field];
  return typeof value === 'number' ? value : Number.NaN;
}

function summary(label: string, result: GetResult): string {
  return `${label}: ${(result.wallMs / 1000).toFixed(2)} s, exit ${result.exitCode}, peers ${(num(result, 'from_peers_bytes') / MiB).toFixed(1)} MiB, http ${(num(result, 'from_http_bytes') / MiB).toFixed(1)} MiB (received ${(num(result, 'http_received_bytes') / MiB).toFixed(1)}); policy ${JSON.stringify(result.lastProgress?.policy)}`;
}

describe.skipIf(!support.isSupported)('the hybrid policy in the lab', () => {
  it('L1: one slow seeder (16 Mbit/s up) beside a fast CDN never makes the download slower than HTTP alone', async () => {
    lab = await createLab([
      { name: 'cdn', down: '1gbit', up: '1gbit' },
      { name: 'seeder', down: '100mbit', up: '16mbit' },
      { name: 'leecher', down: '100mbit', up: '20mbit' },
    ]);
    const file = await publish('l1.bin', 40 * MiB);
    const { serverUrl, fileUrl: url } = await serveFile(lab.host('cdn'), 'l1.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), port: 8080 });

    const httpOnly = await runGet(lab.host('leecher'), url, join(dir, 'http.bin'), ['--no-peers']);
    await startSeed(lab.host('seeder'), file.path, serverUrl);
    const cdnBefore = await lab.host('cdn').counters();
    const hybrid = await runGet(lab.host('leecher'), url, join(dir, 'hybrid.bin'));
    const cdnAfter = await lab.host('cdn').counters();
    console.log(`test/lab L1: ${summary('http-only', httpOnly)}\ntest/lab L1: ${summary('hybrid', hybrid)}; CDN sent ${((cdnAfter.txBytes - cdnBefore.txBytes) / MiB).toFixed(1)} MiB`);

    expect(httpOnly.exitCode, httpOnly.stderr).toBe(0);
    expect(hybrid.exitCode, hybrid.stderr).toBe(0);
    expect(await sha256Of(join(dir, 'hybrid.bin'))).toBe(file.sha256);
    // The target is 1.1x; the margin covers a process start and one chunk's noise on a ~4 s run.
    expect(hybrid.wallMs / httpOnly.wallMs).toBeLessThan(1.25);
    // The slow seeder still added what it could.
    expect(num(hybrid, 'from_peers_bytes')).toBeGreaterThan(0);
  }, 180_000);

  it('a speed floor: the client holds the floor and takes the rest from a seeder that can give it', async () => {
    const floorBitsPerSecond = 30e6;
    lab = await createLab([
      { name: 'cdn', down: '1gbit', up: '1gbit' },
      { name: 'seeder', down: '100mbit', up: '60mbit' },
      { name: 'leecher', down: '200mbit', up: '20mbit' },
    ]);
    const file = await publish('floor.bin', 32 * MiB);
    const served = await serveFile(lab.host('cdn'), 'floor.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), port: 8080, extraArgs: ['--speed-floor', '30mbit'] });
    await startSeed(lab.host('seeder'), file.path, served.serverUrl);
    const result = await runGet(lab.host('leecher'), served.fileUrl, join(dir, 'floor.bin'));
    console.log(`test/lab floor: ${summary('floor 30 Mbit/s', result)}`);

    expect(result.exitCode, result.stderr).toBe(0);
    expect(await sha256Of(join(dir, 'floor.bin'))).toBe(file.sha256);
    expect((result.lastProgress?.policy as { mode?: string } | undefined)?.mode).toBe('speed-floor');
    // At or above the floor over the whole run (process start included, so 0.9x of it)...
    expect((32 * MiB * 8) / (result.wallMs / 1000)).toBeGreaterThan(0.9 * floorBitsPerSecond);
    // ...with most bytes from the seeder, which alone gives twice the floor. HTTP holds the
    // floor until the seeder is met (0.8 of the file came from it on a quiet machine, 0.54
    // in a CI run whose WebRTC start was slowed by load): "most" is more than half.
    expect(num(result, 'from_peers_bytes')).toBeGreaterThan(0.5 * 32 * MiB);
  }, 180_000);

  it('two clients filling from HTTP in one swarm fetch (mostly) disjoint chunks', async () => {
    lab = await createLab([
      { name: 'cdn', down: '1gbit', up: '40mbit' },
      { name: 'a', down: '100mbit', up: '100mbit' },
      { name: 'b', down: '100mbit', up: '100mbit' },
    ]);
    const file = await publish('pair.bin', 24 * MiB);
    const { fileUrl: url } = await serveFile(lab.host('cdn'), 'pair.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), port: 8080 });
    const cdnBefore = await lab.host('cdn').counters();
    const [a, b] = await Promise.all([runGet(lab.host('a'), url, join(dir, 'a.bin'), ['--seed', '5']), runGet(lab.host('b'), url, join(dir, 'b.bin'), ['--seed', '5'])]);
    const cdnAfter = await lab.host('cdn').counters();
    const httpA = [...a.chunkSources].filter(([, source]) => source === 'http').map(([index]) => index);
    const httpB = new Set([...b.chunkSources].filter(([, source]) => source === 'http').map(([index]) => index));
    const both = httpA.filter((index) => httpB.has(index)).length;
    const chunks = a.chunkSources.size;
    const cdnRatio = (cdnAfter.txBytes - cdnBefore.txBytes) / (24 * MiB);
    console.log(`test/lab pair: ${summary('a', a)}\ntest/lab pair: ${summary('b', b)}\ntest/lab pair: chunks from HTTP a=${httpA.length} b=${httpB.size} both=${both} of ${chunks}; CDN sent ${cdnRatio.toFixed(2)}x the file`);

    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(await sha256Of(join(dir, 'a.bin'))).toBe(file.sha256);
    expect(await sha256Of(join(dir, 'b.bin'))).toBe(file.sha256);
    // Each chunk left the CDN about once: few chunks fetched by both...
    expect(both).toBeLessThan(0.15 * chunks);
    // ...and the CDN sent not much more than one file. The rest is what a run cut short (a peer
    // got its next chunk) had already in flight, plus headers: 1.21x and 1.34x in two runs with
    // 0 chunks fetched twice (see http_received against from_http above).
    expect(cdnRatio).toBeLessThan(1.5);
  }, 180_000);
});
