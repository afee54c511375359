import { existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec } from '../../protocol/index.ts';
import { buildOriginApp } from '../../bin/origin-app.ts';
import type { Origin } from '../../origin/index.ts';
import { NGINX_BINARY, freePort, patternBytes, startNginx, tempDir, writeFiles, type NginxFixture } from './fixtures.ts';
import { parseMultipart, rawRequest, type RawResponse } from './http-helpers.ts';

/**
 * Our Range handling against Debian's nginx serving the same bytes. Status, Content-Range
 * and body must agree, except where origin/http/range.ts departs from nginx on purpose:
 * nginx answers 416 to Range headers that do not parse, to invalid ones (last < first) and to
 * empty list elements; RFC 9110 lets us ignore invalid ones (and the issue asks for 200), and
 * its list rule makes empty elements legal. Those cases are listed in DELIBERATE and checked too.
 */
const SIZE = 10_000;
const DATA = patternBytes(SIZE, 21);

const AGREE = [
  'bytes=0-0', 'bytes=0-9', 'bytes=0-', 'bytes=9999-', 'bytes=9999-9999', 'bytes=10000-', 'bytes=10000-10001', 'bytes=-1',
  'bytes=-9999', 'bytes=-10000', 'bytes=-10001', 'bytes=-0', 'bytes=5-99999', 'bytes=0-9999', 'bytes=0-1,3-4', 'bytes=3-4,0-1',
  'bytes=0-1,2-3', 'bytes=1-1,1-1', 'bytes=0-,0-', 'bytes=0-5000,4000-9999', 'bytes=0-4999,5000-', 'bytes=0-1,20000-', 'bytes=20000-,0-1',
  'bytes=20000-,30000-', 'bytes=-1,0-0', 'bytes=0-0,-1,5000-5001', 'bytes=0 - 9', 'bytes= 0-9', 'bytes=0-9 ', 'bytes=0-9, 20-29',
  'BYTES=0-9', 'Bytes=1-2', 'bytes=00-09', 'bytes=0-0000000000000000009', 'items=0-9', 'bytes =0-9', 'bytes', 'bytes=', '',
  'bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,26-27,28-29,30-31',
];
/** Range -> [nginx status, our status] where we choose differently on purpose (see above). */
const DELIBERATE: [string, number, number][] = [
  ['bytes=abc', 416, 200],
  ['bytes=-', 416, 200],
  ['bytes=5-3', 416, 200],
  ['bytes=1-2-3', 416, 200],
  ['bytes=0-1,,3-4', 416, 206],
  ['bytes=0-1,', 416, 206],
  ['bytes=0x10-20', 416, 200],
];

let app: FastifyInstance;
let origin: Origin;
let nginx: NginxFixture;
let ourUrl: string;
const cleanups: (() => Promise<void>)[] = [];

function summary(response: RawResponse): { status: number; contentRange: string | undefined; parts: { range: string | undefined; body: string }[] } {
  const contentType = response.headers['content-type'] ?? '';
  if (response.status === 416) return { status: 416, contentRange: response.headers['content-range'], parts: [] };
  const parts = contentType.startsWith('multipart/byteranges')
    ? parseMultipart(response.body, contentType).map((part) => ({ range: part.headers['content-range'], body: part.body.toString('hex') }))
    : [{ range: undefined, body: response.body.toString('hex') }];
  return { status: response.status, contentRange: response.headers['content-range'], parts };
}

describe.runIf(existsSync(NGINX_BINARY))('Range behaviour compared with nginx', () => {
  beforeAll(async () => {
    const files = await tempDir('cmp-files');
    const data = await tempDir('cmp-data');
    cleanups.push(files.cleanup, data.cleanup);
    await writeFiles(files.path, { 'f.bin': DATA });
    nginx = await startNginx(files.path);
    const port = await freePort();
    ({ app, origin } = await buildOriginApp({ filesDir: files.path, dataDir: data.path, publicUrl: `http://127.0.0.1:${port}`, urlTtlSeconds: 3600 }));
    await app.listen({ port, host: '127.0.0.1' });
    const list = createCodec(FileListSchema).parse((await app.inject({ method: 'GET', url: '/files' })).json());
    ourUrl = (await origin.minter.mintDownloadUrl(list.files[0]!.file_id)).url;
  });
  afterAll(async () => {
    await app?.close();
    await nginx?.stop();
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it.each(AGREE)('agrees with nginx on %j', async (range) => {
    const headers: Record<string, string> = range === '' ? {} : { range };
    const [theirs, ours] = await Promise.all([rawRequest(`${nginx.baseUrl}/f.bin`, { headers }), rawRequest(ourUrl, { headers })]);
    expect(summary(ours)).toEqual(summary(theirs));
    if (ours.status === 206 || ours.status === 200) expect(ours.headers['content-length']).toBe(String(ours.body.length));
  });

  it.each(DELIBERATE)('departs from nginx on purpose for %j (nginx %i, us %i)', async (range, nginxStatus, ourStatus) => {
    const [theirs, ours] = await Promise.all([rawRequest(`${nginx.baseUrl}/f.bin`, { headers: { range } }), rawRequest(ourUrl, { headers: { range } })]);
    expect(theirs.status).toBe(nginxStatus);
    expect(ours.status).toBe(ourStatus);
  });

  it('agrees on If-Range by date, and on a mismatching If-Range', async () => {
    const head = await rawRequest(`${nginx.baseUrl}/f.bin`, { method: 'HEAD' });
    for (const ifRange of [head.headers['last-modified']!, '"nope"', 'Mon, 01 Jan 2001 00:00:00 GMT']) {
      const headers = { range: 'bytes=0-9', 'if-range': ifRange };
      const [theirs, ours] = await Promise.all([rawRequest(`${nginx.baseUrl}/f.bin`, { headers }), rawRequest(ourUrl, { headers })]);
      expect(summary(ours), ifRange).toEqual(summary(theirs));
    }
  });
});
