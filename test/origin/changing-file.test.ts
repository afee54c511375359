import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOriginApp } from '../../bin/origin-app.ts';
import type { Origin } from '../../origin/index.ts';
import { FileListSchema, createCodec } from '../../protocol/index.ts';
import { freePort, tempDir, writeFiles } from './fixtures.ts';

const SIZE = 32 * 1024 * 1024;
const OLD = Buffer.alloc(SIZE, 0x61); // 'a'
const NEW = Buffer.alloc(SIZE, 0x62); // 'b'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a file rewritten while it is served', () => {
  let app: FastifyInstance;
  let origin: Origin;
  let filesDir: string;
  let port: number;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const files = await tempDir('chg-files');
    const data = await tempDir('chg-data');
    cleanups.push(files.cleanup, data.cleanup);
    filesDir = files.path;
    await writeFiles(files.path, { 'live.bin': OLD });
    port = await freePort();
    ({ app, origin } = await buildOriginApp({ filesDir, dataDir: data.path, publicUrl: `http://127.0.0.1:${port}`, urlTtlSeconds: 600 }));
    await app.listen({ port, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await app.close();
    for (const cleanup of cleanups) await cleanup();
  });

  it('ends the response instead of mixing old and new bytes under one ETag, and rebuilds the manifest', async () => {
    const list = createCodec(FileListSchema).parse(await (await fetch(`http://127.0.0.1:${port}/files`)).json());
    const fileId = list.files[0]!.file_id;
    const oldSha = list.files[0]!.sha256;
    const url = new URL((await origin.minter.mintDownloadUrl(fileId)).url);
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Do not read yet: the response stalls with most of the file unsent.
    socket.pause();
    await sleep(300);
    // Rewrite in place (same inode, new mtime), as an editor or `cp` over it would.
    const handle = await open(join(filesDir, 'live.bin'), 'r+');
    await handle.write(NEW, 0, NEW.length, 0);
    await handle.close();
    socket.resume();
    await closed;
    const raw = Buffer.concat(chunks);
    const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    expect(raw.subarray(0, 15).toString()).toBe('HTTP/1.1 200 OK');
    // Cut short, and every byte that came is of the version its ETag names.
    expect(body.length).toBeLessThan(SIZE);
    expect(body.includes(0x62)).toBe(false);
    // The catalog learns of the change and publishes the new content's manifest.
    const newSha = createHash('sha256').update(NEW).digest('hex');
    for (let attempt = 0; attempt < 200 && (await origin.directory.getByFileId(fileId))?.manifest.sha256 !== newSha; attempt++) await sleep(50);
    expect((await origin.directory.getByFileId(fileId))?.manifest.sha256).toBe(newSha);
    expect(newSha).not.toBe(oldSha);
    // A fresh request gets the new bytes whole.
    const fresh = Buffer.from(await (await fetch((await origin.minter.mintDownloadUrl(fileId)).url)).arrayBuffer());
    expect(fresh.equals(NEW)).toBe(true);
  }, 60_000);
});
