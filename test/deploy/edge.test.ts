import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import type { SigningKey } from '../../protocol/index.ts';
import { httpRequest, type HttpAnswer } from './fixtures/http.ts';
import { startStack, testKeys, type EdgeStack, type PublishedTestFile } from './fixtures/stack.ts';

const MiB = 1024 * 1024;
/** Not a whole number of 1 MiB slices, so the last slice is short. */
const SMALL_SIZE = 3 * MiB + 12_345;
const [K1, K2] = testKeys() as [SigningKey, SigningKey];

let stack: EdgeStack;
let file: PublishedTestFile;
let other: PublishedTestFile;
let fileBytes: Buffer;

beforeAll(async () => {
  stack = await startStack({
    originKeys: [K1, K2],
    edgeEnvKeys: [K1, K2],
    // Characters encodeURIComponent escapes: the edge must sign-check and forward the raw path.
    files: [
      { name: 'data set, v1 (ü).bin', sizeBytes: SMALL_SIZE },
      { name: 'other.bin', sizeBytes: 4096 },
      { name: 'two-slices.bin', sizeBytes: 2 * MiB },
      { name: 'empty.bin', sizeBytes: 0 },
    ],
  });
  file = stack.files.get('data set, v1 (ü).bin')!;
  other = stack.files.get('other.bin')!;
  fileBytes = await readFile(file.localPath);
});

afterAll(async () => {
  await stack?.stop();
});

function errorCode(answer: HttpAnswer): unknown {
  const body: unknown = JSON.parse(answer.body.toString('utf8'));
  return typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'object' && body.error !== null && 'code' in body.error
    ? body.error.code
    : undefined;
}

describe('signed URLs at the edge', () => {
  it('serves a URL minted by the origin, which points at the edge; the query goes upstream (the origin checks it too)', async () => {
    const minted = await stack.mint(file.name);
    expect(minted.startsWith(`${stack.edge.url}${file.path}?`)).toBe(true);
    const answer = await httpRequest(minted);
    expect(answer.status).toBe(200);
    expect(answer.body.equals(fileBytes)).toBe(true);
    const upstream = stack.proxy.requests.filter((r) => r.url.startsWith(`${file.path}?`));
    expect(upstream.length).toBeGreaterThan(0);
    expect(upstream.every((r) => /[?&]sig=/.test(r.url) && r.status === 206)).toBe(true);
  });

  it('passes a URL signed by the second key of PEERFILL_SIGNING_KEYS (rotation)', async () => {
    const answer = await httpRequest(stack.edge.url + (await stack.sign(file.path, { key: K2 })), { headers: { range: 'bytes=10-20' } });
    expect(answer.status).toBe(206);
    expect(answer.body.equals(fileBytes.subarray(10, 21))).toBe(true);
  });

  it('passes HEAD signed as GET', async () => {
    const answer = await httpRequest(stack.edge.url + (await stack.sign(file.path)), { method: 'HEAD' });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-length']).toBe(String(SMALL_SIZE));
    expect(answer.body.length).toBe(0);
  });

  const cases: [string, () => Promise<{ url: string; method?: string }>, string][] = [
    ['unsigned', () => Promise.resolve({ url: file.path }), 'PF_ERR_SIGNATURE_MISSING'],
    ['malformed sig', async () => ({ url: (await stack.sign(file.path)).replace(/sig=[^&]+/, 'sig=abc') }), 'PF_ERR_SIGNATURE_MISSING'],
    ['repeated sig', async () => ({ url: `${await stack.sign(file.path)}&sig=${'A'.repeat(43)}` }), 'PF_ERR_SIGNATURE_MISSING'],
    ['tampered sig', async () => ({ url: (await stack.sign(file.path)).replace(/sig=(.)/, (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`) }), 'PF_ERR_SIGNATURE_INVALID'],
    ['tampered path', async () => ({ url: other.path + (await stack.sign(file.path)).slice(file.path.length) }), 'PF_ERR_SIGNATURE_INVALID'],
    ['decoded path spelling', async () => ({ url: (await stack.sign(file.path)).replace('%2C', ',') }), 'PF_ERR_SIGNATURE_INVALID'],
    ['extended expiry', async () => ({ url: (await stack.sign(file.path)).replace(/exp=(\d+)/, (_m, exp: string) => `exp=${Number(exp) + 3600}`) }), 'PF_ERR_SIGNATURE_INVALID'],
    ['non-canonical expiry', async () => ({ url: (await stack.sign(file.path)).replace('exp=', 'exp=0') }), 'PF_ERR_SIGNATURE_INVALID'],
    ['expired', async () => ({ url: await stack.sign(file.path, { ttlSeconds: -5 }) }), 'PF_ERR_URL_EXPIRED'],
    ['unknown kid', async () => ({ url: await stack.sign(file.path, { key: { kid: 'k9', secret: K1.secret } }) }), 'PF_ERR_UNKNOWN_KEY'],
    ['HEAD, tampered', async () => ({ url: (await stack.sign(file.path)).replace('kid=k1', 'kid=k2'), method: 'HEAD' }), ''],
    ['POST with a GET signature', async () => ({ url: await stack.sign(file.path), method: 'POST' }), 'PF_ERR_SIGNATURE_INVALID'],
  ];

  it.each(cases)('%s: 403 at the edge, no bytes, and the origin sees no request', async (_name, build, code) => {
    // Warm the cache first: a cached file must be just as closed to a bad URL.
    expect((await httpRequest(stack.edge.url + (await stack.sign(file.path)), { headers: { range: 'bytes=0-99' } })).status).toBe(206);
    const { url, method } = await build();
    const requestsBefore = stack.proxy.requests.length;
    const answer = await httpRequest(stack.edge.url + url, { method });
    expect(answer.status).toBe(403);
    expect(answer.headers['content-range']).toBeUndefined();
    if (method === 'HEAD') expect(answer.body.length).toBe(0);
    else expect(errorCode(answer)).toBe(code);
    expect(answer.body.length).toBeLessThan(200);
    expect(stack.proxy.requests.length).toBe(requestsBefore);
  });
});

describe('the rest of the origin through the edge', () => {
  it('passes the API through uncached', async () => {
    const [fromOrigin, fromEdge] = await Promise.all([httpRequest(`${stack.originUrl}/files/${file.fileId}`), httpRequest(`${stack.edge.url}/files/${file.fileId}`)]);
    expect(fromEdge.status).toBe(200);
    expect(fromEdge.body.equals(fromOrigin.body)).toBe(true);
  });

  it('logs requests without their signatures', async () => {
    await httpRequest(stack.edge.url + (await stack.sign(file.path)), { headers: { range: 'bytes=0-0' } });
    const log = await stack.edge.accessLog();
    expect(log).toContain(file.path);
    expect(log).not.toMatch(/sig=|exp=|kid=/);
  });
});

describe('Range answers through the edge match the origin', () => {
  const S = SMALL_SIZE;
  const TWO = 2 * MiB;
  const table: [string, string, string | undefined, string?][] = [
    ['whole file', 'data set, v1 (ü).bin', undefined],
    ['first byte', 'data set, v1 (ü).bin', 'bytes=0-0'],
    ['last byte', 'data set, v1 (ü).bin', `bytes=${S - 1}-${S - 1}`],
    ['crossing two slice boundaries', 'data set, v1 (ü).bin', 'bytes=1000000-2200000'],
    ['exactly one slice', 'data set, v1 (ü).bin', `bytes=${MiB}-${2 * MiB - 1}`],
    ['one byte either side of a boundary', 'data set, v1 (ü).bin', `bytes=${MiB - 1}-${MiB}`],
    ['the short last slice', 'data set, v1 (ü).bin', `bytes=${3 * MiB}-${S - 1}`],
    ['open-ended', 'data set, v1 (ü).bin', 'bytes=2000000-'],
    ['open-ended from 0', 'data set, v1 (ü).bin', 'bytes=0-'],
    ['last-pos past the end', 'data set, v1 (ü).bin', `bytes=3100000-${S * 10}`],
    ['suffix', 'data set, v1 (ü).bin', 'bytes=-5000'],
    ['suffix crossing a boundary', 'data set, v1 (ü).bin', `bytes=-${S - MiB + 7}`],
    ['suffix longer than the file', 'data set, v1 (ü).bin', `bytes=-${S * 2}`],
    ['HEAD with a range', 'data set, v1 (ü).bin', 'bytes=1000000-2200000', 'HEAD'],
    ['unsatisfiable: first-pos at the end (in the last slice)', 'data set, v1 (ü).bin', `bytes=${S}-`],
    ['unsatisfiable: far past the end', 'data set, v1 (ü).bin', `bytes=${S + 5 * MiB}-`],
    ['unsatisfiable: empty suffix', 'data set, v1 (ü).bin', 'bytes=-0'],
    ['unsatisfiable: first-pos at the end of a whole-slice file', 'two-slices.bin', `bytes=${TWO}-`],
    ['whole-slice file, last slice', 'two-slices.bin', `bytes=${MiB}-`],
    ['not a bytes range (ignored)', 'data set, v1 (ü).bin', 'items=0-5'],
    ['empty file', 'empty.bin', undefined],
    ['empty file, open range (ignored)', 'empty.bin', 'bytes=0-'],
    ['empty file, unsatisfiable', 'empty.bin', 'bytes=5-'],
  ];

  it.each(table)('%s (%s: %s)', async (_name, fileName, range, method) => {
    const url = await stack.sign(stack.files.get(fileName)!.path);
    const headers: Record<string, string> = range === undefined ? {} : { range };
    const [fromOrigin, fromEdge] = await Promise.all([
      httpRequest(stack.originUrl + url, { headers, method }),
      httpRequest(stack.edge.url + url, { headers, method }),
    ]);
    expect([200, 206, 416]).toContain(fromOrigin.status);
    expect(fromEdge.status).toBe(fromOrigin.status);
    for (const name of ['content-range', 'content-length', 'content-type']) expect(fromEdge.headers[name], name).toBe(fromOrigin.headers[name]);
    expect(fromEdge.body.equals(fromOrigin.body)).toBe(true);
  });
});

// Where the edge departs from the origin, as docs/edge.md says: nginx's range filter decides.
describe('Range forms the edge answers differently (documented)', () => {
  it('several ranges: the whole file, 200 (the slice module serves single ranges only)', async () => {
    const url = await stack.sign(file.path);
    const fromOrigin = await httpRequest(stack.originUrl + url, { headers: { range: 'bytes=0-9,2000000-2000009' } });
    expect(fromOrigin.status).toBe(206);
    expect(fromOrigin.headers['content-type']).toMatch(/^multipart\/byteranges/);
    const answer = await httpRequest(stack.edge.url + url, { headers: { range: 'bytes=0-9,2000000-2000009' } });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-range']).toBeUndefined();
    expect(answer.body.equals(fileBytes)).toBe(true);
  });

  it.each(['bytes=5-3', 'bytes=x', 'bytes=0-1,'])('a malformed Range the origin ignores (%s): 416 at the edge', async (range) => {
    const url = await stack.sign(file.path);
    const fromOrigin = await httpRequest(stack.originUrl + url, { headers: { range } });
    const fromEdge = await httpRequest(stack.edge.url + url, { headers: { range } });
    expect([200, 206]).toContain(fromOrigin.status);
    expect(fromEdge.status).toBe(416);
    expect(fromEdge.headers['content-range']).toBe(`bytes */${SMALL_SIZE}`);
    expect(errorCode(fromEdge)).toBe('PF_ERR_RANGE_NOT_SATISFIABLE');
  });
});
