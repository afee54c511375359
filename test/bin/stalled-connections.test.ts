import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec, createDownloadResponseCodec } from '../../protocol/index.ts';
import { waitFor } from '../support/net.ts';
import { startServeProcess, type ServeProcess } from './fixtures/serve-process.ts';

const fileListCodec = createCodec(FileListSchema);
const FILE_BYTES = 48 * 1024 * 1024;
const STALLED_READERS = 60;
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function openSocket(port: number, request: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(request);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Connections that hold the server and move nothing: readers that never read, uploaders that
 * never finish. Each costs a bounded amount of server memory and is closed after the idle
 * (or request) bound, while a slow reader that keeps reading is never cut.
 */
describe('stalled readers and slow uploaders (real peerfill serve process)', () => {
  let dir: string;
  let server: ServeProcess;
  let path: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-stall-'));
    await mkdir(join(dir, 'data', 'files'), { recursive: true });
    const piece = randomBytes(MiB);
    await writeFile(join(dir, 'data', 'files', 'big.bin'), Buffer.concat(Array.from({ length: FILE_BYTES / MiB }, () => piece)));
    server = await startServeProcess({ cwd: dir, env: { PEERFILL_IDLE_TIMEOUT_SECONDS: '2', PEERFILL_REQUEST_TIMEOUT_SECONDS: '2' } });
    const fileId = fileListCodec.parse(await (await fetch(`${server.base}/files`)).json()).files[0]!.file_id;
    const created = createDownloadResponseCodec.parse(
      await (await fetch(`${server.base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: fileId }) })).json(),
    );
    const url = new URL(created.download_url);
    path = url.pathname + url.search;
    // Warm up: the read pools and the JIT are in place before the baseline is taken.
    for (let round = 0; round < 3; round++) expect((await (await fetch(created.download_url)).arrayBuffer()).byteLength).toBe(FILE_BYTES);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('bounds the memory of readers that never read, and closes them after the idle bound', async () => {
    await sleep(500);
    const baselineRss = await server.rssBytes();
    const baselineFds = await server.fdCount();
    const sockets = await Promise.all(
      Array.from({ length: STALLED_READERS }, async () => {
        const socket = await openSocket(server.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        socket.pause(); // never reads a byte
        socket.on('error', () => undefined);
        return socket;
      }),
    );
    try {
      // Every response has written what the kernel takes and stalled.
      await waitFor(async () => (await server.fdCount()) >= baselineFds + STALLED_READERS, 'the stalled connections to be open', 10_000);
      await sleep(800);
      const stalledRss = await server.rssBytes();
      const stalledFds = await server.fdCount();
      const perConnection = (stalledRss - baselineRss) / STALLED_READERS;
      console.log(`stalled readers: ${STALLED_READERS}, RSS ${(baselineRss / MiB).toFixed(1)} -> ${(stalledRss / MiB).toFixed(1)} MiB (${(perConnection / 1024).toFixed(0)} KiB each), fds ${baselineFds} -> ${stalledFds}`);
      // Two 1 MiB pieces of the pool (origin/http/data-plane.ts), and what the socket holds.
    expect(perConnection).toBeLessThan(2.5 * MiB);
      // Closed by the server once nothing moved for the idle bound (2 s here).
      await waitFor(async () => (await server.fdCount()) <= baselineFds + 2, 'the server to close the stalled connections', 20_000);
      const afterFds = await server.fdCount();
      const afterRss = await server.rssBytes();
      console.log(`after the idle bound: fds ${afterFds}, RSS ${(afterRss / MiB).toFixed(1)} MiB`);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  }, 60_000);

  it('never cuts a slow reader that keeps reading, however long the download takes', async () => {
    const socket = await openSocket(server.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3145727\r\n\r\n`);
    socket.pause();
    let received = 0;
    let closedEarly = false;
    socket.on('close', () => (closedEarly = received < 3 * MiB));
    // ~256 KB/s for 6 s: three times the idle bound, never idle for one.
    for (let tick = 0; tick < 48 && !socket.destroyed; tick++) {
      await sleep(125);
      let chunk: Buffer | null;
      let taken = 0;
      while (taken < 32 * 1024 && (chunk = socket.read() as Buffer | null) !== null) taken += chunk.length;
      received += taken;
    }
    expect(closedEarly).toBe(false);
    expect(socket.destroyed).toBe(false);
    expect(received).toBeGreaterThan(MiB);
    socket.destroy();
  }, 30_000);

  it('closes uploaders that send a body slower than the request bound, and answers them 408', async () => {
    await waitFor(async () => (await server.fdCount()) <= 30, 'earlier connections to be released', 20_000);
    const baselineFds = await server.fdCount();
    const uploaders = await Promise.all(
      Array.from({ length: 40 }, () => openSocket(server.port, 'POST /downloads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"file_id":"')),
    );
    const answers = uploaders.map((socket) => {
      let text = '';
      socket.on('data', (data: Buffer) => (text += data.toString('latin1')));
      socket.on('error', () => undefined);
      return () => text;
    });
    // One byte a quarter-second: always moving, never finishing.
    const drip = setInterval(() => {
      for (const socket of uploaders) if (!socket.destroyed) socket.write('a');
    }, 250);
    try {
      // (fetch's keep-alive sockets from earlier tests may close meanwhile: a margin of a few)
      await waitFor(async () => (await server.fdCount()) >= baselineFds + 36, 'the uploads to be open', 10_000);
      await waitFor(() => uploaders.every((socket) => socket.destroyed || socket.readableEnded), 'the server to end every slow upload', 20_000);
      await waitFor(async () => (await server.fdCount()) <= baselineFds + 2, 'the upload sockets to be released', 10_000);
      for (const answer of answers) expect(answer()).toMatch(/^HTTP\/1\.1 408 .*"PF_ERR_REQUEST_TIMEOUT"/s);
      const health = await fetch(`${server.base}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      clearInterval(drip);
      for (const socket of uploaders) socket.destroy();
    }
  }, 60_000);
});
