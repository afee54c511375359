import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec, createDownloadResponseCodec } from '../../protocol/index.ts';
import { freePort, waitFor } from '../support/net.ts';
import { TestPeer, isAnnounceResponse } from '../tracker/fixtures/ws-client.ts';

/**
 * `peerfill serve --tls-cert --tls-key`: real processes over HTTPS with a self-signed
 * certificate made here by openssl (for localhost and 127.0.0.1). Clients trust it the way
 * the README says: NODE_EXTRA_CA_CERTS for `peerfill get`, `ca` for the test's own requests.
 */
const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
const fileListCodec = createCodec(FileListSchema);

function run(args: string[], cwd: string, env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, PEERFILL_LOG_LEVEL: 'warn', ...env } });
}

function collect(child: ChildProcessWithoutNullStreams): { out: () => string; err: () => string; exit: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { out: () => out, err: () => err, exit };
}

/** A self-signed certificate and its key, PEM, in `dir` under `name`. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  alpn: string | false;
}

/** Offers h2 and http/1.1 by ALPN, as browsers do; `alpn` is what the server chose. */
function httpsRequest(url: string, ca: Buffer, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const requestOptions: RequestOptions & Pick<ConnectionOptions, 'ALPNProtocols'> = { method: options.method ?? 'GET', headers: options.headers, ca, agent: false, ALPNProtocols: ['h2', 'http/1.1'] };
    const req = request(url, requestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), alpn: (res.socket as TLSSocket).alpnProtocol ?? false }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function session(base: string, ca: Buffer, name: string) {
  const list = fileListCodec.parse(JSON.parse((await httpsRequest(`${base}/files`, ca)).body.toString()));
  const file = list.files.find((entry) => entry.name === name)!;
  const created = await httpsRequest(`${base}/downloads`, ca, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: file.file_id }) });
  expect(created.status).toBe(201);
  return { file, session: createDownloadResponseCodec.parse(JSON.parse(created.body.toString())) };
}

let dir: string;
let certs: { cert: string; key: string };
let other: { cert: string; key: string };
let ca: Buffer;
const content = randomBytes(3_000_000);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-tls-'));
  certs = makeCertificate(dir, 'server');
  other = makeCertificate(dir, 'other');
  ca = await readFile(certs.cert);
  await mkdir(join(dir, 'data', 'files'), { recursive: true });
  await writeFile(join(dir, 'data', 'files', 'release.bin'), content);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('peerfill serve --tls-cert --tls-key (real process)', () => {
  let port: number;
  let child: ChildProcessWithoutNullStreams;
  let io: ReturnType<typeof collect>;
  let base: string;

  beforeAll(async () => {
    port = await freePort();
    base = `https://127.0.0.1:${port}`;
    child = run(['serve', '--port', String(port), '--tls-cert', certs.cert, '--tls-key', certs.key], dir);
    io = collect(child);
    await waitFor(() => io.out().includes('web page:') || child.exitCode !== null, 'the page URL');
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('prints an https:// URL and serves the page over TLS, with wss in its CSP', async () => {
    expect(io.err()).toBe('');
    expect(io.out()).toContain(`web page: ${base}/`);
    const page = await httpsRequest(`${base}/`, ca);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('<title>peerfill</title>');
    expect(String(page.headers['content-security-policy'])).toContain(`wss://127.0.0.1:${port}`);
    // The server is TLS only: a plain-HTTP request on its port gets no answer.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('answers an HTTPS Range request on the data plane, byte for byte', async () => {
    const { session: answer } = await session(base, ca, 'release.bin');
    expect(answer.download_url.startsWith(`${base}/d/`)).toBe(true);
    const ranged = await httpsRequest(answer.download_url, ca, { headers: { range: 'bytes=1000000-1999999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 1000000-1999999/${content.length}`);
    expect(ranged.body.equals(content.subarray(1_000_000, 2_000_000))).toBe(true);
    // HTTP/1.1 by choice, not HTTP/2: see the TSDoc of createHttpApp.
    expect(ranged.alpn).toBe('http/1.1');
  });

  it('takes a wss:// announce for a published file', async () => {
    const { file } = await session(base, ca, 'release.bin');
    const peer = await TestPeer.connect(`wss://127.0.0.1:${port}/announce`, undefined, { ca });
    try {
      peer.announce(file.info_hash, { left: 0 });
      const response = await peer.next(isAnnounceResponse);
      expect(response).toMatchObject({ action: 'announce', complete: 1 });
    } finally {
      await peer.close();
    }
  });

  it('`peerfill get https://...` completes when NODE_EXTRA_CA_CERTS names the CA, and says the certificate is untrusted without it', async () => {
    const { file } = await session(base, ca, 'release.bin');
    const out = join(dir, 'got.bin');
    const get = collect(run(['get', `${base}/${file.file_id}`, '-o', out], dir, { NODE_EXTRA_CA_CERTS: certs.cert }));
    expect(await get.exit).toBe(0);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));

    const untrusted = collect(run(['get', `${base}/${file.file_id}`, '-o', join(dir, 'untrusted.bin')], dir));
    expect(await untrusted.exit).toBe(2);
    expect(untrusted.err()).toMatch(/certificate/i);
  });

  it('`peerfill tracker --tls-cert` takes wss announces, reading its manifests from the https origin (NODE_EXTRA_CA_CERTS)', async () => {
    const { file } = await session(base, ca, 'release.bin');
    const trackerPort = await freePort();
    const tracker = run(['tracker', '--origin', base, '--port', String(trackerPort), '--tls-cert', certs.cert, '--tls-key', certs.key], dir, { PEERFILL_SIGNING_KEYS: 'k1:0123456789abcdef0123', NODE_EXTRA_CA_CERTS: certs.cert });
    const trackerIo = collect(tracker);
    try {
      await waitFor(() => trackerIo.out().includes('peerfill tracker') || tracker.exitCode !== null, 'the tracker to listen');
      expect(trackerIo.out()).toContain(`on wss://127.0.0.1:${trackerPort}/announce for origin ${base}`);
      const peer = await TestPeer.connect(`wss://127.0.0.1:${trackerPort}/announce`, undefined, { ca });
      try {
        peer.announce(file.info_hash, { left: 0 });
        expect(await peer.next(isAnnounceResponse)).toMatchObject({ action: 'announce', complete: 1 });
      } finally {
        await peer.close();
      }
    } finally {
      tracker.kill('SIGTERM');
      await trackerIo.exit;
    }
  });

  it('shuts down on SIGTERM', async () => {
    child.kill('SIGTERM');
    expect(await io.exit).toBe(0);
  });
});

describe('peerfill serve --tls-cert --workers 2 (real process)', () => {
  it('serves the data plane over HTTPS from the worker processes', async () => {
    const port = await freePort();
    const dataPort = await freePort();
    const child = run(['serve', '--port', String(port), '--workers', '2', '--data-port', String(dataPort)], dir, { PEERFILL_TLS_CERT: certs.cert, PEERFILL_TLS_KEY: certs.key });
    const io = collect(child);
    try {
      await waitFor(() => io.out().includes('data plane:') || child.exitCode !== null, 'the data-plane workers');
      expect(io.out()).toContain(`download URLs at https://127.0.0.1:${dataPort}`);
      const { session: answer } = await session(`https://127.0.0.1:${port}`, ca, 'release.bin');
      expect(new URL(answer.download_url).origin).toBe(`https://127.0.0.1:${dataPort}`);
      const ranged = await httpsRequest(answer.download_url, ca, { headers: { range: 'bytes=0-99999' } });
      expect(ranged.status).toBe(206);
      expect(ranged.body.equals(content.subarray(0, 100_000))).toBe(true);
      const health = await httpsRequest(`https://127.0.0.1:${dataPort}/healthz`, ca);
      expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
    } finally {
      child.kill('SIGTERM');
      await io.exit;
    }
  });
});

describe('peerfill serve: a bad certificate or key is exit 2 with the path and the reason', () => {
  async function refused(args: string[], env: Record<string, string> = {}): Promise<string> {
    const port = await freePort();
    const io = collect(run(['serve', '--port', String(port), ...args], dir, env));
    expect(await io.exit).toBe(2);
    expect(io.out()).toBe('');
    // One plain sentence per problem, no stack trace.
    expect(io.err()).not.toMatch(/^\s+at /m);
    return io.err();
  }

  it('names a missing file', async () => {
    const missing = join(dir, 'nope.crt');
    const err = await refused(['--tls-cert', missing, '--tls-key', certs.key]);
    expect(err).toContain(`--tls-cert / PEERFILL_TLS_CERT: cannot read ${missing}: no such file`);
  });

  it('names a path it cannot read a file from (a folder; as root, file modes do not stop a read)', async () => {
    const folder = join(dir, 'data');
    const err = await refused(['--tls-cert', certs.cert, '--tls-key', folder]);
    expect(err).toContain(`--tls-key / PEERFILL_TLS_KEY: cannot read ${folder}: is a folder, not a file`);
  });

  it('names a key that does not belong to the certificate', async () => {
    const err = await refused(['--tls-cert', certs.cert, '--tls-key', other.key]);
    expect(err).toContain(`--tls-key / PEERFILL_TLS_KEY: the key in ${other.key} does not belong to the certificate in ${certs.cert}`);
  });

  it('names files that are not PEM', async () => {
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    const err = await refused([], { PEERFILL_TLS_CERT: junk, PEERFILL_TLS_KEY: junk });
    expect(err).toContain(`${junk} is not a PEM certificate`);
    expect(err).toContain(`${junk} is not a PEM private key`);
  });

  it('wants both the certificate and the key', async () => {
    const err = await refused(['--tls-cert', certs.cert]);
    expect(err).toContain('--tls-cert and --tls-key (PEERFILL_TLS_CERT, PEERFILL_TLS_KEY) go together');
  });
});
