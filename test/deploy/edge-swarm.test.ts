import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { httpRequest } from './fixtures/http.ts';
import { startStack, testKeys, type EdgeStack, type PublishedTestFile } from './fixtures/stack.ts';

const MiB = 1024 * 1024;
const FILE_SIZE = 256 * MiB;
const CLIENTS = 20;
/** Clients that GET the whole file in one request; the rest fetch pieces. */
const WHOLE_FILE_CLIENTS = 3;
/** "1 MiB-ish" and deliberately not slice-aligned, so pieces straddle slice boundaries. */
const PIECE_BYTES = MiB + 64 * 1024;
const PIECE_COUNT = Math.ceil(FILE_SIZE / PIECE_BYTES);
const REQUEST_TIMEOUT_MS = 60_000;

let stack: EdgeStack;
let file: PublishedTestFile;
/** SHA-256 (hex) of every piece, from the file on disk. */
let pieceHashes: string[];

function pieceRange(index: number): { start: number; end: number } {
  const start = index * PIECE_BYTES;
  return { start, end: Math.min(FILE_SIZE, start + PIECE_BYTES) - 1 };
}

beforeAll(async () => {
  const keys = testKeys();
  stack = await startStack({ originKeys: keys, edgeEnvKeys: keys, files: [{ name: 'popular.img', sizeBytes: FILE_SIZE }] });
  file = stack.files.get('popular.img')!;
  pieceHashes = [];
  const handle = await open(file.localPath);
  try {
    const buffer = Buffer.alloc(PIECE_BYTES);
    for (let index = 0; index < PIECE_COUNT; index++) {
      const { start, end } = pieceRange(index);
      const { bytesRead } = await handle.read(buffer, 0, end - start + 1, start);
      pieceHashes.push(createHash('sha256').update(buffer.subarray(0, bytesRead)).digest('hex'));
    }
  } finally {
    await handle.close();
  }
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** Every piece once, starting at its own offset (as clients spread their HTTP fill); counts bad pieces. */
async function pieceClient(url: string, firstPiece: number): Promise<{ badPieces: number; bytes: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let badPieces = 0;
  let bytes = 0;
  try {
    for (let step = 0; step < PIECE_COUNT; step++) {
      const index = (firstPiece + step) % PIECE_COUNT;
      const { start, end } = pieceRange(index);
      const answer = await httpRequest(url, { headers: { range: `bytes=${start}-${end}` }, agent, timeoutMs: REQUEST_TIMEOUT_MS });
      const isGood =
        answer.status === 206 &&
        answer.headers['content-range'] === `bytes ${start}-${end}/${FILE_SIZE}` &&
        createHash('sha256').update(answer.body).digest('hex') === pieceHashes[index];
      if (!isGood) badPieces++;
      bytes += answer.body.length;
    }
  } finally {
    agent.destroy();
  }
  return { badPieces, bytes };
}

/** One GET of the whole file, hashed as it streams (never held in memory). */
async function wholeFileClient(url: string): Promise<{ status: number; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest('hex'), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('whole-file download stalled')));
    req.on('error', reject);
    req.end();
  });
}

describe('20 clients through the edge', () => {
  it('get the right bytes while the origin sends each slice about once', async () => {
    const pieceClients = CLIENTS - WHOLE_FILE_CLIENTS;
    // Each client has its own signature (a different expiry): the cache is shared by path anyway.
    const urls = [
      await stack.mint(file.name),
      ...(await Promise.all(Array.from({ length: CLIENTS - 1 }, async (_, i) => stack.edge.url + (await stack.sign(file.path, { ttlSeconds: 900 + i }))))),
    ];
    expect(new Set(urls.map((url) => new URL(url).searchParams.get('sig'))).size).toBe(CLIENTS);
    const [pieceResults, wholeResults] = await Promise.all([
      Promise.all(urls.slice(0, pieceClients).map((url, i) => pieceClient(url, Math.floor((i * PIECE_COUNT) / pieceClients)))),
      Promise.all(urls.slice(pieceClients).map((url) => wholeFileClient(url))),
    ]);

    for (const result of pieceResults) expect(result).toEqual({ badPieces: 0, bytes: FILE_SIZE });
    for (const result of wholeResults) expect(result).toEqual({ status: 200, sha256: file.sha256, bytes: FILE_SIZE });

    const originBytes = stack.proxy.bodyBytes(file.path);
    const upstream = stack.proxy.requests.filter((r) => r.url.startsWith(`${file.path}?`));
    // Every origin request is one whole aligned slice, with the client's signature forwarded.
    for (const r of upstream) {
      expect(r.range).toMatch(/^bytes=[0-9]+-[0-9]+$/);
      const [start = 0, end = 0] = (r.range ?? '').slice(6).split('-').map(Number);
      expect(start % MiB).toBe(0);
      expect(end - start + 1).toBe(MiB);
      expect(r.url).toMatch(/[?&]sig=/);
    }
    const ratio = originBytes / FILE_SIZE;
    console.log(
      `edge swarm: ${CLIENTS} clients x ${FILE_SIZE / MiB} MiB delivered ${(CLIENTS * FILE_SIZE) / MiB} MiB; ` +
        `origin sent ${originBytes} bytes in ${upstream.length} requests = ${ratio.toFixed(4)}x the file`,
    );
    expect(originBytes).toBeGreaterThanOrEqual(FILE_SIZE);
    expect(originBytes).toBeLessThanOrEqual(1.1 * FILE_SIZE);

    // And now it is all cached: one more full read costs the origin nothing.
    const requestsBefore = stack.proxy.requests.length;
    const again = await httpRequest(stack.edge.url + (await stack.sign(file.path, { ttlSeconds: 3000 })), { headers: { range: `bytes=${100 * MiB}-${130 * MiB}` }, timeoutMs: REQUEST_TIMEOUT_MS });
    expect(again.status).toBe(206);
    expect(stack.proxy.requests.length).toBe(requestsBefore);
  }, 420_000);
});
