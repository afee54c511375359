import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileChunkStore } from '../../client/node/file-chunk-store.ts';
import { readStateFile } from '../../client/node/state-file.ts';
import { verifyChunk } from '../../client/verify.ts';
import { chunkRange, type Manifest } from '../../protocol/index.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

const CHUNK = 256 * 1024;
let dir: string;
let bytes: Uint8Array;
let manifest: Manifest;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-fstore-'));
  bytes = testBytes(CHUNK * 4 + 100, 7);
  manifest = await makeManifest(bytes, 'f', CHUNK);
});
/** Stores a test opened to look at, closed after it (a handle left to the GC is a DEP0137 warning). */
let opened: FileChunkStore[] = [];
afterEach(async () => {
  await Promise.all(opened.map((store) => store.close()));
  opened = [];
  await rm(dir, { recursive: true, force: true });
});

function track(store: FileChunkStore): FileChunkStore {
  opened.push(store);
  return store;
}

const chunk = (index: number) => {
  const { start, end } = chunkRange(manifest, index);
  return bytes.subarray(start, end);
};

async function writeSome(out: string, indexes: number[]) {
  const store = new FileChunkStore(out, { flushIntervalMs: 1 });
  await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
  for (const index of indexes) await store.put(index, chunk(index));
  await store.flush();
  await store.close();
}

function countingVerify(m: Manifest) {
  const checked: number[] = [];
  return { checked, verify: (i: number, b: Uint8Array) => (checked.push(i), verifyChunk(m, i, b)) };
}

describe('FileChunkStore', () => {
  it('resumes from a valid state file without re-reading the chunks', async () => {
    const out = join(dir, 'a.bin');
    await writeSome(out, [0, 2]);
    const { checked, verify } = countingVerify(manifest);
    const have = await track(new FileChunkStore(out)).open(manifest, verify);
    expect([have.get(0), have.get(1), have.get(2)]).toEqual([true, false, true]);
    expect(checked).toEqual([]);
  });

  it('a torn state file is not trusted: every chunk is re-verified, and only good ones count', async () => {
    const out = join(dir, 'b.bin');
    await writeSome(out, [0, 1, 3]);
    const text = await readFile(`${out}.part.state`, 'utf8');
    await writeFile(`${out}.part.state`, text.slice(0, text.length >> 1));
    // Corrupt chunk 1 on disk too: re-verification must catch it.
    const part = await readFile(`${out}.part`);
    part[CHUNK + 10] = (part[CHUNK + 10] ?? 0) ^ 0xff;
    await writeFile(`${out}.part`, part);
    const { checked, verify } = countingVerify(manifest);
    const have = await track(new FileChunkStore(out)).open(manifest, verify);
    expect(checked.sort()).toEqual([0, 1, 2, 3, 4]);
    expect([0, 1, 2, 3, 4].map((i) => have.get(i))).toEqual([true, false, false, true, false]);
  });

  it('a state file with a wrong checksum (edited) is rejected', async () => {
    const out = join(dir, 'c.bin');
    await writeSome(out, [0]);
    const parsed = JSON.parse(await readFile(`${out}.part.state`, 'utf8')) as { body: { have: string } };
    parsed.body.have = '_w'; // claims chunks 0..4
    await writeFile(`${out}.part.state`, JSON.stringify(parsed));
    expect((await readStateFile(`${out}.part.state`)).kind).toBe('corrupt');
    const reasons: string[] = [];
    const have = await track(new FileChunkStore(out, { onStateRejected: (reason) => reasons.push(reason) })).open(manifest, (i, b) => verifyChunk(manifest, i, b));
    expect(have.count()).toBe(1);
    expect(reasons[0]).toMatch(/checksum/);
  });

  it('a foreign state file (another manifest) has its claimed chunks re-verified', async () => {
    const out = join(dir, 'd.bin');
    await writeSome(out, [0, 1]);
    const other = { ...manifest, name: 'other.bin' };
    const foreign = await makeManifest(bytes, 'g', CHUNK);
    const reasons: string[] = [];
    const { checked, verify } = countingVerify(foreign);
    const have = await track(new FileChunkStore(out, { onStateRejected: (reason) => reasons.push(reason) })).open(foreign, verify);
    expect(other.info_hash).toBe(manifest.info_hash);
    expect(reasons[0]).toMatch(/foreign/);
    expect(checked.sort()).toEqual([0, 1]);
    // Same bytes, so the chunks do verify against the new manifest.
    expect(have.count()).toBe(2);
  });

  it('a state written without fsync on another boot of the machine is not trusted: its chunks are re-verified', async () => {
    const out = join(dir, 'g.bin');
    await writeSome(out, [0, 3]);
    const state = await readStateFile(`${out}.part.state`);
    if (state.kind !== 'valid') throw new Error('expected a valid state');
    expect(state.body.boot_id).toMatch(/^[0-9a-f-]{8,}$/);
    // Same file, same chunks, but recorded by a boot that is over: a power cut may have lost
    // page-cache data, so chunk 3's bytes are zeroed on disk as such a loss would leave them.
    const body = { ...state.body, boot_id: '00000000-0000-0000-0000-000000000000' };
    await writeFile(`${out}.part.state`, JSON.stringify({ body, sha256: createHash('sha256').update(JSON.stringify(body)).digest('hex') }));
    const part = await readFile(`${out}.part`);
    part.fill(0, CHUNK * 3, CHUNK * 4);
    await writeFile(`${out}.part`, part);
    const reasons: string[] = [];
    const { checked, verify } = countingVerify(manifest);
    const have = await track(new FileChunkStore(out, { onStateRejected: (reason) => reasons.push(reason) })).open(manifest, verify);
    expect(reasons[0]).toMatch(/machine restarted/);
    expect(checked.sort()).toEqual([0, 3]);
    expect([0, 1, 2, 3, 4].map((i) => have.get(i))).toEqual([true, false, false, false, false]);
  });

  it("'fsync' durability records no boot id, and its state is trusted on any boot", async () => {
    const out = join(dir, 'h.bin');
    const store = new FileChunkStore(out, { flushIntervalMs: 1, durability: 'fsync' });
    await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
    await store.put(1, chunk(1));
    await store.flush();
    await store.close();
    const state = await readStateFile(`${out}.part.state`);
    expect(state.kind === 'valid' && state.body.boot_id).toBe(undefined);
    const { checked, verify } = countingVerify(manifest);
    const have = await track(new FileChunkStore(out)).open(manifest, verify);
    expect(checked).toEqual([]);
    expect(have.get(1)).toBe(true);
  });

  it('a .part without any state file is scanned, never trusted', async () => {
    const out = join(dir, 'e.bin');
    await writeSome(out, [2]);
    await rm(`${out}.part.state`);
    const { checked, verify } = countingVerify(manifest);
    const have = await track(new FileChunkStore(out)).open(manifest, verify);
    expect(checked).toHaveLength(5);
    expect(have.count()).toBe(1);
  });

  it('replaces the state atomically, after the data, and renames to OUT on finalize', async () => {
    const out = join(dir, 'f.bin');
    const saved: number[] = [];
    const store = new FileChunkStore(out, { flushIntervalMs: 1, onSaved: (n) => saved.push(n) });
    await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
    for (let index = 0; index < 5; index++) await store.put(index, chunk(index));
    await store.flush();
    const state = await readStateFile(`${out}.part.state`);
    expect(state.kind).toBe('valid');
    expect(saved[saved.length - 1]).toBe(5);
    // The spare that the next state is written into (so that a full disk still takes it), never a state itself.
    expect((await stat(`${out}.part.state.tmp`)).size).toBeGreaterThanOrEqual(4096);
    expect((await readStateFile(`${out}.part.state.tmp`)).kind).toBe('corrupt');
    await store.finalize();
    await expect(stat(`${out}.part.state.tmp`)).rejects.toThrow();
    expect(Buffer.compare(await readFile(out), bytes)).toBe(0);
    await expect(stat(`${out}.part`)).rejects.toThrow();
    await expect(stat(`${out}.part.state`)).rejects.toThrow();
    expect(await store.read(4, 0, 100)).toEqual(bytes.subarray(CHUNK * 4, CHUNK * 4 + 100));
    await store.close();
  });

  it('close() while finalize() is under way lets it publish the file, and leaves no descriptor open', async () => {
    const out = join(dir, 'g.bin');
    const store = new FileChunkStore(out, { flushIntervalMs: 1 });
    await store.open(manifest, (i, b) => verifyChunk(manifest, i, b));
    for (let index = 0; index < 5; index++) await store.put(index, chunk(index));
    // As Download.destroy() may, while Download's finish awaits finalize().
    const finalizing = store.finalize();
    await store.close();
    await finalizing;
    expect(Buffer.compare(await readFile(out), bytes)).toBe(0);
    const fds = await readdir('/proc/self/fd');
    const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    expect(targets.filter((target) => target.startsWith(out))).toEqual([]);
  });
});
