import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDownloadResponseCodec } from '../../protocol/index.ts';
import { freePort, patternBytes, startS3, tempDir, type S3Fixture } from '../origin/fixtures.ts';
import { waitFor } from '../support/net.ts';

/**
 * S3-direct: the origin publishes a bucket and hands out S3 SigV4 presigned GetObject URLs;
 * clients fetch bytes from S3 itself (s3rver here), never through the origin.
 */
const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
const FILE_BYTES = 32 * 1024 * 1024 + 12345;

interface Proc {
  child: ChildProcessWithoutNullStreams;
  lines: () => Record<string, unknown>[];
  out: () => string;
  exit: Promise<number | null>;
}

function run(args: string[], cwd: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, PEERFILL_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', () => undefined);
  const lines = () =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { child, lines, out: () => out, exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

describe('S3-direct downloads (presigned GetObject URLs, s3rver)', () => {
  let s3: S3Fixture;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: Proc;
  let serverUrl: string;
  let env: Record<string, string>;
  const content = patternBytes(FILE_BYTES, 7);
  const sha256 = createHash('sha256').update(content).digest('hex');

  beforeAll(async () => {
    s3 = await startS3();
    await s3.put('releases/image.iso', content);
    dir = await tempDir('s3-direct');
    const port = await freePort();
    serverUrl = `http://127.0.0.1:${port}`;
    env = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      PEERFILL_S3_BUCKET: s3.bucket,
      PEERFILL_S3_PREFIX: 'releases/',
      PEERFILL_S3_ENDPOINT: s3.endpoint,
      PEERFILL_S3_PRESIGN: 'true',
      PEERFILL_DATA_DIR: join(dir.path, 'state'),
    };
    server = run(['serve', '--port', String(port)], dir.path, env);
    await waitFor(() => server.out().includes('web page:'), 'the server');
  });

  afterAll(async () => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
    await s3.close();
    await dir.cleanup();
  });

  async function fileId(): Promise<string> {
    const body = (await (await fetch(`${serverUrl}/files`)).json()) as { files: { file_id: string; name: string }[] };
    const entry = body.files.find((file) => file.name === 'image.iso');
    if (!entry) throw new Error('image.iso is not published');
    return entry.file_id;
  }

  it('mints presigned S3 URLs that point at the bucket, not at the origin', async () => {
    const response = await fetch(`${serverUrl}/downloads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file_id: await fileId() }),
    });
    expect(response.status).toBe(201);
    const session = createDownloadResponseCodec.parse(await response.json());
    const url = new URL(session.download_url);
    expect(url.origin).toBe(s3.endpoint);
    expect(url.pathname).toBe(`/${s3.bucket}/releases/image.iso`);
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(session.checksum).toBe(`sha256:${sha256}`);
  });

  it('downloads with HTTP fill only, straight from S3', async () => {
    const get = run(['get', `${serverUrl}/${await fileId()}`, '-o', join(dir.path, 'http-only.iso'), '--no-peers', '--json'], dir.path, env);
    expect(await get.exit).toBe(0);
    const done = get.lines().find((line) => line.event === 'done');
    expect(done).toMatchObject({ sha256, from_peers_bytes: 0, from_http_bytes: FILE_BYTES });
    expect(createHash('sha256').update(await readFile(join(dir.path, 'http-only.iso'))).digest('hex')).toBe(sha256);
  });

  it('downloads with peers: a seeder joins the swarm, the file is exact', async () => {
    const id = await fileId();
    const seeder = run(['seed', join(dir.path, 'http-only.iso'), '--server', serverUrl, '--file-id', id, '--json'], dir.path, env);
    try {
      await waitFor(() => seeder.lines().some((line) => line.event === 'seeding'), 'the seeder');
      const get = run(['get', `${serverUrl}/${id}`, '-o', join(dir.path, 'with-peers.iso'), '--json'], dir.path, env);
      expect(await get.exit).toBe(0);
      const done = get.lines().find((line) => line.event === 'done');
      expect(done).toMatchObject({ sha256 });
      expect(Number(done?.from_peers_bytes) + Number(done?.from_http_bytes)).toBe(FILE_BYTES);
      // The seeder was found through the tracker and connected over WebRTC.
      expect(get.lines().some((line) => line.event === 'peer' && line.connected === true)).toBe(true);
      expect(createHash('sha256').update(await readFile(join(dir.path, 'with-peers.iso'))).digest('hex')).toBe(sha256);
    } finally {
      seeder.child.kill('SIGINT');
      await seeder.exit;
    }
  });
});
