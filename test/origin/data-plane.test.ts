import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, readlink, readdir, realpath, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { FileEntrySchema, FileListSchema, createCodec, parseSigningKeys, signedPath } from '../../protocol/index.ts';
import { buildOriginApp } from '../../bin/origin-app.ts';
import type { Origin } from '../../origin/index.ts';
import { parseRange } from '../../origin/http/range.ts';
import { UrlSigner } from '../../origin/signing/signer.ts';
import { freePort, patternBytes, tempDir, writeFiles } from './fixtures.ts';
import { parseMultipart, rawRequest } from './http-helpers.ts';

const run = promisify(execFile);
const SIZE = 100_000;
const DATA = patternBytes(SIZE, 11);
const BIG = patternBytes(8 * 1024 * 1024 + 3, 12);
const UNICODE_NAME = 'Ünïcödé report (final) 100%.txt';
const parsedKeys = parseSigningKeys('test1:0123456789abcdef0123456789abcdef');
if (!parsedKeys.ok) throw new Error('bad test keys');
const KEYS = parsedKeys.keys;

let app: FastifyInstance;
let origin: Origin;
let baseUrl: string;
let filesDir: string;
const cleanups: (() => Promise<void>)[] = [];
const ids = new Map<string, string>();

async function mint(name: string): Promise<string> {
  return (await origin.minter.mintDownloadUrl(ids.get(name)!)).url;
}

const FileListCodec = createCodec(FileListSchema);
const FileEntryCodec = createCodec(FileEntrySchema);
const ErrorBodyCodec = createCodec(Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) }));

function isErrorBody(value: unknown, code: string): boolean {
  const decoded = ErrorBodyCodec.decode(value);
  return decoded.ok && decoded.value.error.code === code;
}

beforeAll(async () => {
  const files = await tempDir('dp-files');
  const data = await tempDir('dp-data');
  cleanups.push(files.cleanup, data.cleanup);
  filesDir = files.path;
  await writeFiles(files.path, { 'data.bin': DATA, 'big.bin': BIG, [UNICODE_NAME]: 'hello', 'empty.txt': '' });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  ({ app, origin } = await buildOriginApp({ filesDir: files.path, dataDir: data.path, publicUrl: baseUrl, urlTtlSeconds: 3600, signingKeys: KEYS }));
  await app.listen({ port, host: '127.0.0.1' });
  const list = FileListCodec.parse(await (await fetch(`${baseUrl}/files`)).json());
  for (const file of list.files) ids.set(file.name, file.file_id);
});

afterAll(async () => {
  await app.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('signed data plane over HTTP', () => {
  it('GET sends the whole file with validators, disposition and cache headers', async () => {
    const response = await rawRequest(await mint('data.bin'));
    expect(response.status).toBe(200);
    expect(response.body.equals(DATA)).toBe(true);
    expect(response.headers['content-length']).toBe(String(SIZE));
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers['etag']).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(new Date(response.headers['last-modified']!).getTime()).toBeGreaterThan(0);
    expect(response.headers['cache-control']).toBe('public, max-age=600');
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['content-disposition']).toBe(`attachment; filename="data.bin"; filename*=UTF-8''data.bin`);
  });

  it('Content-Disposition carries a UTF-8 filename* and an ASCII fallback (RFC 6266)', async () => {
    const url = await mint(UNICODE_NAME);
    expect(new URL(url).pathname).toBe(signedPath(ids.get(UNICODE_NAME)!, UNICODE_NAME));
    const response = await rawRequest(url);
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('hello');
    expect(response.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(response.headers['content-disposition']).toBe(
      `attachment; filename="_n_c_d_ report (final) 100_.txt"; filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20report%20%28final%29%20100%25.txt`,
    );
  });

  it('HEAD answers like GET without a body, for full and ranged requests', async () => {
    const url = await mint('data.bin');
    const head = await rawRequest(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-length']).toBe(String(SIZE));
    const ranged = await rawRequest(url, { method: 'HEAD', headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 10-19/${SIZE}`);
    expect(ranged.headers['content-length']).toBe('10');
    expect(ranged.body.length).toBe(0);
  });

  const rangeCases = [
    'bytes=0-0', 'bytes=0-99', 'bytes=99990-', 'bytes=-1', 'bytes=-100', 'bytes=-200000', 'bytes=500-400000', 'bytes=0-65535',
    'bytes=1000-200000', 'bytes=0-1,10-19', 'bytes=50-59,0-9,99999-', 'bytes=0-1, 5-6,,', 'bytes=1-1,1-1', 'bytes=0-1,100000-200000',
    'bytes=100000-', 'bytes=-0', 'bytes=200000-300000', 'bytes=abc', 'bytes=5-3', 'bytes=0-,0-', 'items=0-5', 'BYTES=3-4',
  ];
  it.each(rangeCases)('Range: %s', async (range) => {
    const response = await rawRequest(await mint('data.bin'), { headers: { range } });
    const decision = parseRange(range, SIZE);
    if (decision.kind === 'full') {
      expect(response.status).toBe(200);
      expect(response.body.equals(DATA)).toBe(true);
      expect(response.headers['content-range']).toBeUndefined();
    } else if (decision.kind === 'unsatisfiable') {
      expect(response.status).toBe(416);
      expect(response.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(isErrorBody(JSON.parse(response.body.toString()), 'PF_ERR_RANGE_NOT_SATISFIABLE')).toBe(true);
    } else if (decision.ranges.length === 1) {
      const { start, end } = decision.ranges[0]!;
      expect(response.status).toBe(206);
      expect(response.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
      expect(response.headers['content-length']).toBe(String(end - start + 1));
      expect(response.body.equals(DATA.subarray(start, end + 1))).toBe(true);
    } else {
      expect(response.status).toBe(206);
      expect(response.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
      expect(response.headers['content-length']).toBe(String(response.body.length));
      const parts = parseMultipart(response.body, response.headers['content-type']!);
      expect(parts).toHaveLength(decision.ranges.length);
      decision.ranges.forEach(({ start, end }, index) => {
        expect(parts[index]!.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
        expect(parts[index]!.headers['content-type']).toBe('application/octet-stream');
        expect(parts[index]!.body.equals(DATA.subarray(start, end + 1))).toBe(true);
      });
    }
  });

  it('serves ranges of an empty file the way nginx does', async () => {
    const url = await mint('empty.txt');
    expect((await rawRequest(url)).status).toBe(200);
    expect((await rawRequest(url, { headers: { range: 'bytes=0-' } })).status).toBe(200);
    const unsatisfiable = await rawRequest(url, { headers: { range: 'bytes=5-9' } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers['content-range']).toBe('bytes */0');
  });

  it('honours If-Range with the strong ETag or the exact date, else sends the whole file', async () => {
    const url = await mint('data.bin');
    const { headers } = await rawRequest(url, { method: 'HEAD' });
    const etag = headers['etag']!;
    const lastModified = headers['last-modified']!;
    const ask = async (ifRange: string) => (await rawRequest(url, { headers: { range: 'bytes=0-9', 'if-range': ifRange } })).status;
    expect(await ask(etag)).toBe(206);
    expect(await ask(lastModified)).toBe(206);
    expect(await ask(`W/${etag}`)).toBe(200);
    expect(await ask('"something-else"')).toBe(200);
    expect(await ask(new Date(Date.parse(lastModified) - 1000).toUTCString())).toBe(200);
    expect(await ask('not a date')).toBe(200);
  });

  it('answers conditional requests with 304 and 412', async () => {
    const url = await mint('data.bin');
    const { headers } = await rawRequest(url, { method: 'HEAD' });
    const etag = headers['etag']!;
    const notModified = await rawRequest(url, { headers: { 'if-none-match': `"x", W/${etag}` } });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
    expect(notModified.headers['etag']).toBe(etag);
    expect((await rawRequest(url, { headers: { 'if-modified-since': headers['last-modified']! } })).status).toBe(304);
    expect((await rawRequest(url, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
    expect((await rawRequest(url, { headers: { 'if-match': '"other"' } })).status).toBe(412);
    expect((await rawRequest(url, { headers: { 'if-match': etag, range: 'bytes=0-0' } })).status).toBe(206);
  });

  it('403 with no file bytes for unsigned, expired, unknown-key and tampered URLs', async () => {
    const url = new URL(await mint('data.bin'));
    const expect403 = async (target: string, code: string) => {
      const response = await rawRequest(target);
      expect(response.status, target).toBe(403);
      expect(isErrorBody(JSON.parse(response.body.toString()), code), `${target} ${response.body.toString()}`).toBe(true);
      expect(response.body.length).toBeLessThan(200);
      expect(response.headers['cache-control']).toBe('no-store');
    };
    await expect403(`${url.origin}${url.pathname}`, 'PF_ERR_SIGNATURE_MISSING');
    const expiredQuery = new UrlSigner(KEYS).sign('GET', url.pathname, Math.floor(Date.now() / 1000) - 10);
    await expect403(`${url.origin}${url.pathname}?${new URLSearchParams({ ...expiredQuery })}`, 'PF_ERR_URL_EXPIRED');
    const other = parseSigningKeys('other:0123456789abcdef0123456789abcdef');
    if (!other.ok) throw new Error('keys');
    const unknown = new UrlSigner(other.keys).sign('GET', url.pathname, Math.floor(Date.now() / 1000) + 60);
    await expect403(`${url.origin}${url.pathname}?${new URLSearchParams({ ...unknown })}`, 'PF_ERR_UNKNOWN_KEY');
    // Every single-character substitution of the path, exp, kid and sig, over the wire.
    const query = Object.fromEntries(url.searchParams);
    const flip = (char: string) => (char === 'A' ? 'B' : /[0-9]/.test(char) ? String((Number(char) + 1) % 10) : 'A');
    const attempts: string[] = [];
    // Inside `/d/` a tamper is no longer a data-plane URL at all: 404, and no bytes either.
    for (const prefix of ['/x/', '/dx']) {
      const response = await rawRequest(`${url.origin}${prefix}${url.pathname.slice(3)}${url.search}`);
      expect(response.status).toBe(404);
      expect(response.body.includes(DATA.subarray(0, 16))).toBe(false);
    }
    for (let i = 3; i < url.pathname.length; i++) {
      attempts.push(`${url.origin}${url.pathname.slice(0, i)}${flip(url.pathname[i]!)}${url.pathname.slice(i + 1)}${url.search}`);
    }
    for (const field of ['exp', 'kid', 'sig'] as const) {
      const value = query[field]!;
      for (let i = 0; i < value.length; i++) {
        const tampered = { ...query, [field]: value.slice(0, i) + flip(value[i]!) + value.slice(i + 1) };
        attempts.push(`${url.origin}${url.pathname}?${new URLSearchParams(tampered)}`);
      }
    }
    for (const attempt of attempts) {
      const response = await rawRequest(attempt, { headers: { range: 'bytes=0-' } });
      expect(response.status, attempt).toBe(403);
      expect(response.body.includes(DATA.subarray(0, 16))).toBe(false);
    }
    expect(attempts.length).toBeGreaterThan(80);
  });

  it('404 for a validly signed path that names no published file', async () => {
    const signer = new UrlSigner(KEYS);
    const exp = Math.floor(Date.now() / 1000) + 60;
    for (const path of [signedPath('nosuchfile', 'data.bin'), signedPath(ids.get('data.bin')!, 'other-name.bin')]) {
      const query = signer.sign('GET', path, exp);
      const response = await rawRequest(`${baseUrl}${path}?${new URLSearchParams({ ...query })}`);
      expect(response.status).toBe(404);
      expect(isErrorBody(JSON.parse(response.body.toString()), 'PF_ERR_FILE_NOT_FOUND')).toBe(true);
    }
  });

  it('serves /files, /files/:id and /files/:id/manifest with error bodies for unknown ids', async () => {
    const id = ids.get('data.bin')!;
    const entry = FileEntryCodec.parse(await (await fetch(`${baseUrl}/files/${id}`)).json());
    expect(entry.size).toBe(SIZE);
    expect(entry.sha256).toBe(createHash('sha256').update(DATA).digest('hex'));
    const missing = await fetch(`${baseUrl}/files/AAAAAAAAAAAAAAAAAAAAAA/manifest`);
    expect(missing.status).toBe(404);
    expect(isErrorBody(await missing.json(), 'PF_ERR_FILE_NOT_FOUND')).toBe(true);
    const invalid = await fetch(`${baseUrl}/files/not..valid`);
    expect(invalid.status).toBe(400);
    expect(isErrorBody(await invalid.json(), 'PF_ERR_VALIDATION')).toBe(true);
  });

  it('a client that disconnects mid-body releases the file handle at once', async () => {
    const bigPath = await realpath(join(filesDir, 'big.bin'));
    const openHandles = async () => {
      let count = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target === bigPath) count++;
      }
      return count;
    };
    const url = await mint('big.bin');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = get(url, (res) => {
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > 256 * 1024) {
            req.destroy();
            resolve();
          }
        });
        res.on('error', () => undefined);
      });
      req.on('error', (error) => (received > 0 ? undefined : reject(error)));
    });
    expect(received).toBeLessThan(BIG.length);
    // The request's stream is destroyed at once; the descriptor itself is shared by requests
    // for the same file (like nginx's open_file_cache) and closes shortly after the last one
    // ends. Poll, bounded by attempts, until it is gone: nothing holds it after the disconnect.
    expect(await openHandles()).toBeLessThanOrEqual(1);
    let remaining = -1;
    for (let attempt = 0; attempt < 1000 && remaining !== 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      remaining = await openHandles();
    }
    expect(remaining).toBe(0);
  });

  it('curl -C - resumes a partial download from a signed URL to the exact file', async () => {
    const work = await tempDir('curl');
    try {
      const out = join(work.path, 'big.bin');
      await writeFile(out, BIG.subarray(0, 3_000_001));
      const url = await mint('big.bin');
      await run('curl', ['-sS', '--fail', '-C', '-', '-o', out, url]);
      const downloaded = await readFile(out);
      expect(downloaded.length).toBe(BIG.length);
      expect(createHash('sha256').update(downloaded).digest('hex')).toBe(createHash('sha256').update(BIG).digest('hex'));
      // And a resume of a complete file is a no-op, not an error (curl treats 416 as done).
      await run('curl', ['-sS', '-C', '-', '-o', out, url]);
      expect((await readFile(out)).equals(BIG)).toBe(true);
    } finally {
      await work.cleanup();
    }
  });
});
