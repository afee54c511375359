import { createHash } from 'node:crypto';
import { realpath, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FileListSchema, MIN_CHUNK_SIZE_BYTES, chooseChunkSize, createCodec, verifyManifest } from '../../protocol/index.ts';
import { buildOriginApp } from '../../bin/origin-app.ts';
import { addFile, createOrigin, type OriginConfig } from '../../origin/index.ts';
import { readAddedSources } from '../../origin/publish/added-sources.ts';
import { ManifestBuilder } from '../../origin/publish/manifest-builder.ts';
import { patternBytes, startS3, tempDir, writeFiles } from './fixtures.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const silent = pino({ level: 'silent' });

function expectedChunks(bytes: Buffer, chunkSize: number): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) out.push(sha256(bytes.subarray(offset, offset + chunkSize)));
  return out;
}

/** A logger whose messages the test can count (how many manifests were built). */
function recordingLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const parsed: unknown = JSON.parse(chunk.toString());
      if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed && typeof parsed.msg === 'string') messages.push(parsed.msg);
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, sink), messages };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
async function dirs() {
  const files = await tempDir('files');
  const data = await tempDir('data');
  cleanups.push(files.cleanup, data.cleanup);
  return { files: files.path, data: data.path };
}
const configFor = (files: string, data: string): OriginConfig => ({ filesDir: files, dataDir: data, publicUrl: 'http://cdn.test', urlTtlSeconds: 3600 });

describe('ManifestBuilder', () => {
  const source = (bytes: Buffer, pieceBytes: number) => ({
    fileId: 'f1',
    name: 'file.bin',
    contentType: 'application/octet-stream',
    sizeBytes: bytes.length,
    read: () => {
      const pieces: Uint8Array[] = [];
      // Odd piece sizes so pieces straddle chunk boundaries; some views share one ArrayBuffer.
      for (let offset = 0; offset < bytes.length; offset += pieceBytes) pieces.push(bytes.subarray(offset, offset + pieceBytes));
      return Promise.resolve(pieces);
    },
  });

  /** A positional reader over `bytes` that hands out at most `maxReadBytes` per call, as a file read may. */
  const positionalSource = (bytes: Buffer, maxReadBytes: number) => {
    const reader = {
      isClosed: false,
      readInto: (target: Uint8Array, position: number) => {
        const piece = bytes.subarray(position, position + Math.min(target.byteLength, maxReadBytes));
        target.set(piece);
        return Promise.resolve(piece.byteLength);
      },
      close: () => {
        reader.isClosed = true;
        return Promise.resolve();
      },
    };
    return { reader, source: { ...source(bytes, 1), read: () => Promise.resolve(reader) } };
  };

  it.each([
    { workers: 1, inlineMaxBytes: 0 },
    { workers: 2, inlineMaxBytes: 0 },
    { workers: 1, inlineMaxBytes: Number.MAX_SAFE_INTEGER },
  ])('hashes like node:crypto over the whole file and every chunk, from pieces or a positional reader (%o)', async ({ workers, inlineMaxBytes }) => {
    // Several chunks, so the reads go through the pool's buffers several times over.
    const bytes = patternBytes(9 * MIN_CHUNK_SIZE_BYTES + 12_345, 3);
    const builder = new ManifestBuilder({ hashWorkers: workers, inlineMaxBytes, logger: silent });
    try {
      const manifest = await builder.build(source(bytes, 100_003));
      expect(manifest.sha256).toBe(sha256(bytes));
      expect(manifest.chunk_size).toBe(chooseChunkSize(bytes.length));
      expect(manifest.chunks).toEqual(expectedChunks(bytes, manifest.chunk_size));
      expect((await verifyManifest(manifest)).ok).toBe(true);
      // A second build on the same workers gives the same answer, and so does a positional reader (closed after).
      expect(await builder.build(source(bytes, 65_536))).toEqual(manifest);
      const { reader, source: positional } = positionalSource(bytes, 300_007);
      expect(await builder.build(positional)).toEqual(manifest);
      expect(reader.isClosed).toBe(true);
    } finally {
      await builder.close();
    }
  });

  it('fails, and closes the reader, when a positional source ends early', async () => {
    const builder = new ManifestBuilder({ logger: silent, inlineMaxBytes: 0 });
    try {
      const bytes = patternBytes(3 * MIN_CHUNK_SIZE_BYTES, 2);
      const { reader, source: positional } = positionalSource(bytes, 1 << 20);
      await expect(builder.build({ ...positional, sizeBytes: bytes.length + 1 })).rejects.toThrow(/shrank/);
      expect(reader.isClosed).toBe(true);
      // The builder is still usable afterwards.
      expect((await builder.build(source(bytes, 4096))).sha256).toBe(sha256(bytes));
    } finally {
      await builder.close();
    }
  });

  it('a 1 KB file is one short chunk; an empty file has none', async () => {
    const builder = new ManifestBuilder({ logger: silent, inlineMaxBytes: 0 });
    try {
      const small = patternBytes(1024, 9);
      const one = await builder.build(source(small, 1024));
      expect(one.chunk_size).toBe(MIN_CHUNK_SIZE_BYTES);
      expect(one.chunks).toEqual([sha256(small)]);
      const empty = await builder.build(source(Buffer.alloc(0), 1));
      expect(empty.chunks).toEqual([]);
      expect(empty.sha256).toBe(sha256(Buffer.alloc(0)));
      expect((await verifyManifest(empty)).ok).toBe(true);
    } finally {
      await builder.close();
    }
  });

  it('fails when the bytes do not match the announced size', async () => {
    const builder = new ManifestBuilder({ logger: silent, inlineMaxBytes: 0 });
    try {
      const bytes = patternBytes(1000, 1);
      await expect(builder.build({ ...source(bytes, 100), sizeBytes: 999 })).rejects.toThrow(/grew/);
      await expect(builder.build({ ...source(bytes, 100), sizeBytes: 1001 })).rejects.toThrow(/shrank/);
    } finally {
      await builder.close();
    }
  });
});

/** name -> file_id of everything an origin publishes, via GET /files. */
async function publishedFiles(config: OriginConfig, logger: Logger = silent) {
  const { app, origin } = await buildOriginApp(config, { logger });
  const response = await app.inject({ method: 'GET', url: '/files' });
  expect(response.statusCode).toBe(200);
  const body: unknown = response.json();
  const list = FileListCodec.parse(body);
  return { app, origin, byName: new Map(list.files.map((file) => [file.name, file])) };
}
const FileListCodec = createCodec(FileListSchema);

describe('catalog and manifest cache', () => {
  it('publishes regular files only, with ids stable across restarts, and reuses cached manifests', async () => {
    const { files, data } = await dirs();
    const outside = await tempDir('outside');
    cleanups.push(outside.cleanup);
    await writeFiles(outside.path, { 'secret.txt': 'secret' });
    const big = patternBytes(2 * MIN_CHUNK_SIZE_BYTES + 5, 2);
    await writeFiles(files, { 'big.bin': big, 'sub/small.txt': 'x'.repeat(1024), empty: '', '.env': 'SECRET=1', '.cache/x': 'x' });
    await symlink(join(outside.path, 'secret.txt'), join(files, 'escape.txt'));
    await symlink(join(files, 'big.bin'), join(files, 'alias.bin'));

    const first = recordingLogger();
    const run1 = await publishedFiles(configFor(files, data), first.logger);
    await run1.app.close();
    expect([...run1.byName.keys()].sort()).toEqual(['alias.bin', 'big.bin', 'empty', 'small.txt']);
    expect(first.messages.filter((message) => message === 'manifest built')).toHaveLength(4);
    const bigEntry = run1.byName.get('big.bin')!;
    expect(bigEntry.sha256).toBe(sha256(big));
    expect(bigEntry.chunk_count).toBe(3);

    const second = recordingLogger();
    const run2 = await publishedFiles(configFor(files, data), second.logger);
    expect(second.messages.filter((message) => message === 'manifest built')).toHaveLength(0);
    for (const [name, entry] of run1.byName) expect(run2.byName.get(name)).toEqual(entry);
    const found = await run2.origin.directory.getByInfoHash(bigEntry.info_hash);
    expect(found?.manifest.file_id).toBe(bigEntry.file_id);
    expect((await run2.app.inject({ method: 'GET', url: `/files/${bigEntry.file_id}/manifest` })).json()).toEqual(found?.manifest);
    await run2.app.close();

    // Ids come from paths, not from the data dir: a fresh data dir gives the same ids.
    const fresh = await tempDir('data2');
    cleanups.push(fresh.cleanup);
    const run3 = await publishedFiles(configFor(files, fresh.path));
    await run3.app.close();
    for (const [name, entry] of run1.byName) expect(run3.byName.get(name)?.file_id).toBe(entry.file_id);
  });

  it('a changed file keeps its id and gets a new manifest and info_hash', async () => {
    const { files, data } = await dirs();
    await writeFiles(files, { 'f.bin': patternBytes(5000, 1) });
    const { app, origin, byName } = await publishedFiles(configFor(files, data));
    const before = byName.get('f.bin')!;
    await writeFile(join(files, 'f.bin'), patternBytes(6000, 2));
    await utimes(join(files, 'f.bin'), new Date(), new Date(Date.now() + 5000));
    await origin.refresh();
    const after = (await origin.directory.getByFileId(before.file_id))!.manifest;
    expect(after.size).toBe(6000);
    expect(after.info_hash).not.toBe(before.info_hash);
    expect(await origin.directory.getByInfoHash(before.info_hash)).toBeUndefined();
    expect(await origin.directory.getByInfoHash(after.info_hash)).toBeDefined();
    await app.close();
  });

  it('publishes new files on refresh and forgets deleted ones', async () => {
    const { files, data } = await dirs();
    await writeFiles(files, { 'a.txt': 'a' });
    const { app, origin, byName } = await publishedFiles(configFor(files, data));
    await writeFiles(files, { 'b.txt': 'b' });
    await rm(join(files, 'a.txt'));
    await origin.refresh();
    const list = FileListCodec.parse((await app.inject({ method: 'GET', url: '/files' })).json());
    expect(list.files.map((file) => file.name)).toEqual(['b.txt']);
    expect((await app.inject({ method: 'GET', url: `/files/${byName.get('a.txt')!.file_id}` })).statusCode).toBe(404);
    await app.close();
  });

  it('addFile publishes a file outside the folder and remembers it across restarts', async () => {
    const { files, data } = await dirs();
    const elsewhere = await tempDir('elsewhere');
    cleanups.push(elsewhere.cleanup);
    await writeFiles(files, { 'in.txt': 'in' });
    await writeFiles(elsewhere.path, { 'extra.iso': patternBytes(3000, 4) });
    const origin = await createOrigin(configFor(files, data), { logger: silent });
    const manifest = await origin.addFile(join(elsewhere.path, 'extra.iso'));
    expect(manifest.content_type).toBe('application/x-iso9660-image');
    const inside = await origin.addFile(join(files, 'in.txt'));
    await origin.close();
    await expect(createOrigin(configFor(files, data), { logger: silent }).then((o) => o.addFile(join(files, 'missing')))).rejects.toThrow(/not a regular file/);
    const { app, byName } = await publishedFiles(configFor(files, data));
    expect(byName.get('extra.iso')?.info_hash).toBe(manifest.info_hash);
    expect(byName.get('in.txt')?.file_id).toBe(inside.file_id);
    await app.close();
  });

  it('addFile without an origin builds only the added file, and an origin later reuses its manifest', async () => {
    const { files, data } = await dirs();
    const elsewhere = await tempDir('elsewhere');
    cleanups.push(elsewhere.cleanup);
    await writeFiles(files, { 'in.bin': patternBytes(5000, 7), 'other.bin': 'not added' });
    await writeFiles(elsewhere.path, { 'extra.iso': patternBytes(3000, 8) });
    const lean = recordingLogger();
    const added = await addFile(configFor(files, data), join(elsewhere.path, 'extra.iso'), { logger: lean.logger });
    const inside = await addFile(configFor(files, data), join(files, 'in.bin'), { logger: lean.logger });
    // No scan of the folder: other.bin is left to the origin.
    expect(lean.messages.filter((message) => message === 'manifest built')).toHaveLength(2);
    await expect(addFile(configFor(files, data), join(files, 'missing'), { logger: silent })).rejects.toThrow(/not a regular file/);

    const origin = recordingLogger();
    const { app, byName } = await publishedFiles(configFor(files, data), origin.logger);
    expect(origin.messages.filter((message) => message === 'manifest built')).toHaveLength(1);
    expect(byName.get('extra.iso')?.info_hash).toBe(added.info_hash);
    expect(byName.get('in.bin')?.info_hash).toBe(inside.info_hash);
    expect(inside.sha256).toBe(sha256(patternBytes(5000, 7)));
    // Only the file outside the folder needed remembering.
    expect(await readAddedSources(data)).toEqual([{ kind: 'path', path: await realpath(join(elsewhere.path, 'extra.iso')) }]);
    await app.close();
  });

  it('publishes the objects of an S3 prefix, and hands out presigned URLs in presign mode', async () => {
    const s3 = await startS3();
    cleanups.push(() => s3.close());
    const data = await tempDir('data-s3');
    cleanups.push(data.cleanup);
    const body = patternBytes(4000, 5);
    await s3.put('pub/one.bin', body);
    await s3.put('pub/.hidden', 'x');
    await s3.put('other/two.bin', 'not under the prefix');
    const config: OriginConfig = {
      s3: { bucket: s3.bucket, prefix: 'pub/', endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, presign: true },
      dataDir: data.path,
      publicUrl: 'http://cdn.test',
      urlTtlSeconds: 600,
    };
    const { app, origin, byName } = await publishedFiles(config);
    expect([...byName.keys()]).toEqual(['one.bin']);
    const entry = byName.get('one.bin')!;
    expect(entry.sha256).toBe(sha256(body));
    const minted = await origin.minter.mintDownloadUrl(entry.file_id);
    const url = new URL(minted.url);
    expect(url.origin).toBe(s3.endpoint);
    expect(url.pathname).toBe(`/${s3.bucket}/pub/one.bin`);
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
    const fetched = Buffer.from(await (await fetch(minted.url)).arrayBuffer());
    expect(fetched.equals(body)).toBe(true);
    await app.close();
    // peerfill add: an object under the prefix keeps the scan's id; one outside it is remembered.
    expect((await addFile(config, `s3://${s3.bucket}/pub/one.bin`, { logger: silent })).file_id).toBe(entry.file_id);
    expect((await addFile(config, `s3://${s3.bucket}/other/two.bin`, { logger: silent })).sha256).toBe(sha256(Buffer.from('not under the prefix')));
    expect(await readAddedSources(data.path)).toEqual([{ kind: 's3', bucket: s3.bucket, key: 'other/two.bin' }]);
  });
});
