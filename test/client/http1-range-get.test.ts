import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { parseResponseHead } from '../../client/node/http1-head.ts';
import { createHttp1RangeGet } from '../../client/node/http1-range-get.ts';

/** A raw TCP server that answers each request with what the test scripts, byte for byte. */
interface ScriptedServer {
  url: string;
  connections: number;
  requests: string[];
}

type Answer = (socket: Socket, request: string, connection: number) => void;

const servers: Array<{ server: Server; sockets: Set<Socket> }> = [];
afterEach(async () => {
  for (const { server, sockets } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

function listen(server: Server, answer: Answer, scheme: 'http' | 'https'): Promise<ScriptedServer> {
  const scripted: ScriptedServer = { url: '', connections: 0, requests: [] };
  const sockets = new Set<Socket>();
  server.on(scheme === 'https' ? 'secureConnection' : 'connection', (socket: Socket) => {
    const connection = scripted.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = '';
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const request = pending.slice(0, end);
        pending = pending.slice(end + 4);
        scripted.requests.push(request);
        answer(socket, request, connection);
      }
    });
  });
  servers.push({ server, sockets });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      scripted.url = `${scheme}://127.0.0.1:${address.port}/file.bin?sig=x`;
      resolve(scripted);
    });
  });
}

const scripted = (answer: Answer) => listen(createServer(), answer, 'http');

const BODY = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251));

/** The Range asked for, as [start, end] inclusive. */
function rangeOf(request: string): [number, number] {
  const match = /\r\nRange: bytes=(\d+)-(\d+)/i.exec(request);
  if (!match) throw new Error(`no Range in ${request}`);
  return [Number(match[1]), Number(match[2])];
}

function partial(request: string, extraHeaders = ''): { head: string; body: Buffer } {
  const [start, end] = rangeOf(request);
  const body = BODY.subarray(start, end + 1);
  const head = `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${end}/${BODY.length}\r\nContent-Length: ${body.length}\r\n${extraHeaders}\r\n`;
  return { head, body };
}

async function readAll(response: { readInto(target: Uint8Array): Promise<number> }, sizes: number[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const size of sizes) {
    const target = new Uint8Array(size);
    const filled = await response.readInto(target);
    parts.push(Buffer.from(target.subarray(0, filled)));
  }
  return Buffer.concat(parts);
}

const signal = () => new AbortController().signal;

describe('http1RangeGet (reads straight into the caller’s buffers)', () => {
  it('assembles a head split over many writes and a body that trickles in, into buffers of any size', async () => {
    const server = await scripted((socket, request) => {
      const { head, body } = partial(request);
      const bytes = Buffer.concat([Buffer.from(head, 'latin1'), body]);
      // 7-byte writes for the head and the start of the body, then the rest in uneven pieces.
      let offset = 0;
      const step = () => {
        if (offset >= bytes.length) return;
        const size = offset < head.length + 100 ? 7 : 20_011;
        socket.write(bytes.subarray(offset, offset + size));
        offset += size;
        setImmediate(step);
      };
      step();
    });
    const response = await createHttp1RangeGet()(server.url, 'bytes=1000-150999', signal());
    expect(response.status).toBe(206);
    expect(response.header('content-range')).toBe(`bytes 1000-150999/${BODY.length}`);
    const got = await readAll(response, [1, 65_536, 3, 60_000, 30_000]);
    expect(got.equals(BODY.subarray(1000, 151_000))).toBe(true);
    expect(await response.readInto(new Uint8Array(10))).toBe(0);
  });

  it('keeps the connection for the next request, and opens a new one after Connection: close', async () => {
    let closeNext = false;
    const server = await scripted((socket, request) => {
      const { head, body } = partial(request, closeNext ? 'Connection: close\r\n' : '');
      socket.write(head);
      socket.write(body);
      if (closeNext) socket.end();
    });
    const get = createHttp1RangeGet();
    for (const start of [0, 1000]) {
      const response = await get(server.url, `bytes=${start}-${start + 999}`, signal());
      expect((await readAll(response, [1000])).equals(BODY.subarray(start, start + 1000))).toBe(true);
    }
    expect(server.connections).toBe(1);
    closeNext = true;
    await readAll(await get(server.url, 'bytes=0-9', signal()), [10]);
    closeNext = false;
    const response = await get(server.url, 'bytes=10-19', signal());
    expect((await readAll(response, [10])).equals(BODY.subarray(10, 20))).toBe(true);
    expect(server.connections).toBe(2);
    expect(server.requests[0]).toMatch(/^GET \/file\.bin\?sig=x HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\nRange: bytes=0-999\r\n/);
  });

  it('replaces a pooled connection that the server closed meanwhile, without an error', async () => {
    const server = await scripted((socket, request) => {
      const { head, body } = partial(request);
      socket.write(head);
      socket.end(body);
    });
    const get = createHttp1RangeGet();
    // The server closes after each response without saying so: the pooled socket is stale.
    await readAll(await get(server.url, 'bytes=0-99', signal()), [100]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const response = await get(server.url, 'bytes=100-199', signal());
    expect((await readAll(response, [100])).equals(BODY.subarray(100, 200))).toBe(true);
    expect(server.connections).toBe(2);
  });

  it('refuses a body it cannot frame: a chunked 206 gets a clear error', async () => {
    const server = await scripted((socket, request) => {
      const [start, end] = rangeOf(request);
      socket.end(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${end}/${BODY.length}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    });
    const response = await createHttp1RangeGet()(server.url, 'bytes=0-4', signal());
    await expect(response.readInto(new Uint8Array(5))).rejects.toThrow(/without Content-Length/);
  });

  it('fails when the server sends more than its Content-Length, instead of reading it as the next response', async () => {
    const server = await scripted((socket, request) => {
      const { head, body } = partial(request);
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from('junk after the body')]));
    });
    const get = createHttp1RangeGet();
    const outcome = await get(server.url, 'bytes=0-99', signal()).then((response) => response.readInto(new Uint8Array(100))).then(
      (filled) => filled,
      (error: unknown) => error,
    );
    if (typeof outcome === 'number') {
      // The junk came after the body: it stays unread, and the next request on that
      // connection fails on it rather than take it as its response.
      expect(outcome).toBe(100);
      await expect(get(server.url, 'bytes=0-9', signal()).then((response) => readAll(response, [10]))).rejects.toMatchObject({ code: 'PF_ERR_UPSTREAM' });
    } else {
      // The junk came with the head (one packet): refused at once.
      expect(outcome).toMatchObject({ code: 'PF_ERR_UPSTREAM' });
    }
  });

  it('a malformed response head is an upstream error, not a crash', async () => {
    const server = await scripted((socket) => socket.end('HTTP/1.1 2OO Fine\r\n\r\n'));
    await expect(createHttp1RangeGet()(server.url, 'bytes=0-9', signal())).rejects.toMatchObject({ code: 'PF_ERR_UPSTREAM' });
    const endless = await scripted((socket) => socket.end(`HTTP/1.1 206 OK\r\n${'X-Pad: y\r\n'.repeat(3000)}`));
    await expect(createHttp1RangeGet()(endless.url, 'bytes=0-9', signal())).rejects.toThrow(/head larger than/);
  });

  it('an abort in mid-body rejects the read and drops the connection', async () => {
    const server = await scripted((socket, request) => {
      const { head, body } = partial(request);
      socket.write(head);
      socket.write(body.subarray(0, 10)); // and then nothing
    });
    const controller = new AbortController();
    const response = await createHttp1RangeGet()(server.url, 'bytes=0-999', controller.signal);
    const read = response.readInto(new Uint8Array(1000));
    setTimeout(() => controller.abort(), 20);
    await expect(read).rejects.toMatchObject({ code: 'PF_ERR_ABORTED' });
  });

  it('speaks https through TLS, reading into the caller’s buffer the same way', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pf-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'cert.pem'));
      const server = await listen(
        createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert }),
        (socket, request) => {
          const { head, body } = partial(request);
          socket.write(head);
          socket.write(body);
        },
        'https',
      );
      const get = createHttp1RangeGet({ ca: cert });
      const response = await get(server.url, 'bytes=5000-104999', signal());
      expect((await readAll(response, [50_000, 50_000])).equals(BODY.subarray(5000, 105_000))).toBe(true);
      // Without the CA, the server's certificate is refused.
      await expect(createHttp1RangeGet()(server.url, 'bytes=0-9', signal())).rejects.toThrow(/self[- ]signed|certificate/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseResponseHead', () => {
  const valid = 'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\nX-Twice: a\r\nx-twice: b\r\n\r\nBODY';

  it('parses status, lower-cased headers (repeats joined) and where the body starts', () => {
    const head = parseResponseHead(Buffer.from(valid, 'latin1'));
    expect(head).toMatchObject({ status: 206, isKeepAlive: true, headBytes: valid.indexOf('BODY') });
    expect(head?.headers.get('x-twice')).toBe('a, b');
    expect(parseResponseHead(Buffer.from(valid.slice(0, 40), 'latin1'))).toBeUndefined();
    expect(parseResponseHead(Buffer.from('HTTP/1.0 200 OK\r\n\r\n', 'latin1'))?.isKeepAlive).toBe(false);
    expect(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n', 'latin1'))?.isKeepAlive).toBe(false);
  });

  it('fuzz: mutated heads either parse, wait for more, or fail with PF_ERR_UPSTREAM', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const base = Buffer.from(valid, 'latin1');
    for (let round = 0; round < 5000; round++) {
      const bytes = Buffer.from(base.subarray(0, Math.floor(random() * (base.length + 1))));
      for (let flips = Math.floor(random() * 4); flips > 0 && bytes.length > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      try {
        const head = parseResponseHead(bytes);
        if (head) {
          expect(head.status).toBeGreaterThanOrEqual(100);
          expect(head.headBytes).toBeLessThanOrEqual(bytes.length);
        }
      } catch (error) {
        expect(error).toMatchObject({ code: 'PF_ERR_UPSTREAM' });
      }
    }
  });
});
