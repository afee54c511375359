import { connect } from 'node:net';
import { request } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec, createDownloadResponseCodec, type CreateDownloadResponse } from '../../protocol/index.ts';
import { contractViolation, parseRawResponse } from '../support/error-contract.ts';
import { startServeProcess, type ServeProcess } from './fixtures/serve-process.ts';

const fileListCodec = createCodec(FileListSchema);
const REQUESTS = 10_000;
const CONCURRENCY = 16;
const MiB = 1024 * 1024;

interface HostileRequest {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

interface Answer {
  status: number;
  body: string;
}

/** One request over its own connection (a hostile client does not keep a tidy pool), with a bound on time. */
function send(port: number, hostile: HostileRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: hostile.method, path: hostile.path, headers: { ...hostile.headers, connection: 'close', ...(hostile.body ? { 'content-length': String(hostile.body.length) } : {}) }, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${hostile.kind}`)));
    // A 413 may close the socket before the whole body is written: that is an answer, not an error.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? resolve({ status: -1, body: '' }) : reject(error)));
    req.end(hostile.body);
  });
}

function rawSend(port: number, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const parsed = parseRawResponse(Buffer.concat(chunks).toString('latin1'));
      resolve({ status: parsed.status, body: parsed.body });
    });
  });
}

function nested(depth: number): string {
  return `{"file_id":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

/**
 * A hostile REST run against a real `peerfill serve`: malformed and deeply nested JSON,
 * huge bodies, bad encodings, wrong methods, forged counters, other sessions' ids, broken
 * HTTP. Every answer is in the error contract (or a success the request was entitled to),
 * nothing answers 5xx, the process lives, and its RSS comes back to where it was.
 */
describe('hostile REST run (real peerfill serve process)', () => {
  let dir: string;
  let server: ServeProcess;
  let fileId: string;
  let mine: CreateDownloadResponse;
  let theirs: CreateDownloadResponse;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-hostile-'));
    await mkdir(join(dir, 'data', 'files'), { recursive: true });
    await writeFile(join(dir, 'data', 'files', 'target.bin'), Buffer.alloc(3 * MiB, 9));
    server = await startServeProcess({ cwd: dir, env: { PEERFILL_SESSION_RATE_PER_SECOND: '50', PEERFILL_SESSION_BURST: '200' } });
    fileId = fileListCodec.parse(await (await fetch(`${server.base}/files`)).json()).files[0]!.file_id;
    const create = async () =>
      createDownloadResponseCodec.parse(await (await fetch(`${server.base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: fileId }) })).json());
    mine = await create();
    theirs = await create();
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function hostileRequests(count: number, seed: number): HostileRequest[] {
    const json = { 'content-type': 'application/json' };
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const mineId = mine.session_id;
    const theirsId = theirs.session_id;
    const make: fc.Arbitrary<HostileRequest>[] = [
      fc.string({ maxLength: 200 }).map((text) => ({ kind: 'malformed-json', method: 'POST', path: '/downloads', headers: json, body: Buffer.from(`{"file_id":${text}`) })),
      fc.jsonValue({ maxDepth: 6 }).map((value) => ({ kind: 'random-json', method: 'POST', path: '/downloads', headers: json, body: Buffer.from(JSON.stringify(value) ?? 'null') })),
      fc.integer({ min: 100, max: 30_000 }).map((depth) => ({ kind: 'nested-json', method: 'POST', path: '/downloads', headers: json, body: Buffer.from(nested(depth)) })),
      fc.constantFrom(80 * 1024, 300 * 1024, MiB).map((size) => ({ kind: 'huge-body', method: 'PATCH', path: `/downloads/${mineId}`, headers: { ...json, ...bearer(mine.session_token) }, body: Buffer.from(`{"have":"${'A'.repeat(size)}"}`) })),
      fc.constant({ kind: 'nested-1mb', method: 'POST', path: '/downloads', headers: json, body: Buffer.from(nested(512 * 1024)) }),
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => ({ kind: 'bad-encoding-body', method: 'POST', path: '/downloads', headers: json, body: Buffer.concat([Buffer.from('{"file_id":"'), Buffer.from(bytes), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from('"}')]) })),
      fc.constantFrom('%E0%A4%A', '%ZZ', '%C0%AF', '%ED%A0%80', '%00', '..%2F..%2Fetc%2Fpasswd').map((bad) => ({ kind: 'bad-encoding-url', method: 'GET', path: `/files/${bad}?sig=SECRET-SIG`, headers: {} })),
      fc.constantFrom(['DELETE', '/downloads'], ['PUT', `/downloads/${mineId}`], ['POST', '/files'], ['PATCH', '/files'], ['DELETE', `/d/${fileId}/target.bin`], ['POST', '/healthz'], ['PUT', '/metrics']).map(([method, path]) => ({ kind: 'wrong-method', method, path, headers: {} })),
      fc.record({ field: fc.constantFrom('bytes_confirmed', 'bytes_from_peers', 'bytes_from_http'), value: fc.oneof(fc.constant(1e300), fc.constant(-1), fc.double(), fc.string(), fc.constant(Number.MAX_SAFE_INTEGER + 2)) }).map(({ field, value }) => ({
        kind: 'forged-counter',
        method: 'PATCH',
        path: `/downloads/${mineId}`,
        headers: { ...json, ...bearer(mine.session_token) },
        body: Buffer.from(JSON.stringify({ [field]: value })),
      })),
      fc.constantFrom('GET', 'PATCH').map((method) => ({
        kind: 'other-session',
        method,
        path: `/downloads/${theirsId}${method === 'GET' ? '/progress' : ''}`,
        headers: { ...json, ...bearer(mine.session_token) },
        body: method === 'PATCH' ? Buffer.from('{"status":"paused","bytes_from_peers":999}') : undefined,
      })),
      fc.string({ maxLength: 60 }).map((token) => ({ kind: 'bad-token', method: 'GET', path: `/downloads/${mineId}`, headers: { authorization: `Bearer ${token.replace(/[^\x21-\x7e]/g, 'x')}` } })),
      fc.string({ minLength: 1, maxLength: 300 }).map((junk) => ({ kind: 'random-path', method: 'GET', path: `/d/${encodeURIComponent(junk)}/x?exp=1&kid=k&sig=${encodeURIComponent(junk)}`, headers: {} })),
      fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1').map((type) => ({ kind: 'content-type', method: 'POST', path: '/downloads', headers: { 'content-type': type }, body: Buffer.from('file_id=x') })),
      fc.constant({ kind: 'long-param', method: 'GET', path: `/downloads/${'a'.repeat(5000)}`, headers: {} }),
      fc.constant({ kind: 'legit', method: 'GET', path: `/downloads/${mineId}/progress`, headers: bearer(mine.session_token) }),
    ];
    return fc.sample(fc.oneof(...make), { numRuns: count, seed });
  }

  async function run(requests: HostileRequest[]): Promise<{ byKind: Map<string, Map<number, number>>; violations: string[] }> {
    const byKind = new Map<string, Map<number, number>>();
    const violations: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const hostile = requests[next++]!;
        const answer = await send(server.port, hostile);
        const counts = byKind.get(hostile.kind) ?? new Map<number, number>();
        counts.set(answer.status, (counts.get(answer.status) ?? 0) + 1);
        byKind.set(hostile.kind, counts);
        if (answer.status === -1) continue;
        if (answer.status >= 500) violations.push(`${hostile.kind}: ${answer.status} ${answer.body.slice(0, 120)}`);
        if (answer.status >= 400) {
          const problem = contractViolation(answer.status, answer.body);
          if (problem) violations.push(`${hostile.kind}: ${problem}`);
          if (answer.body.includes('SECRET-SIG')) violations.push(`${hostile.kind}: the answer echoes the URL`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return { byKind, violations };
  }

  it(`answers ${REQUESTS} hostile requests in the error contract, without a crash, and RSS returns to its baseline`, async () => {
    // Warm-up: the same mix, so the baseline already holds what any run allocates once.
    expect((await run(hostileRequests(3000, 1))).violations).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const baselineRss = await server.rssBytes();
    const { byKind, violations } = await run(hostileRequests(REQUESTS, 2));
    // Broken HTTP on raw sockets, as a last round.
    for (const raw of ['\x00\x01\x02garbage\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', `GET /files HTTP/1.1\r\nHost: x\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`, 'POST /downloads HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n', 'POST /downloads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n']) {
      const answer = await rawSend(server.port, Buffer.from(raw, 'latin1'));
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(contractViolation(answer.status, answer.body)).toBeUndefined();
    }
    const summary = [...byKind].map(([kind, counts]) => `${kind} ${[...counts].map(([status, n]) => `${status}x${n}`).join(',')}`).join('; ');
    console.log(`hostile run: ${REQUESTS} requests: ${summary}`);
    expect(violations.slice(0, 10)).toEqual([]);
    expect(server.child.exitCode).toBeNull();
    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    // The victim's session is untouched by the forged and foreign calls.
    const theirsNow: unknown = await (await fetch(`${server.base}/downloads/${theirs.session_id}`, { headers: { authorization: `Bearer ${theirs.session_token}` } })).json();
    expect(theirsNow).toMatchObject({ status: 'active', bytes_from_peers: 0 });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const afterRss = await server.rssBytes();
    console.log(`hostile run: RSS ${(baselineRss / MiB).toFixed(1)} MiB before, ${(afterRss / MiB).toFixed(1)} MiB after`);
    expect(afterRss).toBeLessThan(baselineRss + 48 * MiB);
  }, 300_000);
});
