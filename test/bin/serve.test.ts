import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDownloadResponseCodec, FileListSchema, createCodec } from '../../protocol/index.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/net.ts';

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

describe('peerfill serve (real process)', () => {
  let dir: string;
  let port: number;
  let child: ChildProcessWithoutNullStreams;
  let io: ReturnType<typeof collect>;
  const content = randomBytes(1_500_000);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-serve-'));
    await mkdir(join(dir, 'data', 'files', 'nested'), { recursive: true });
    await writeFile(join(dir, 'data', 'files', 'nested', 'release 1.0.bin'), content);
    port = await freePort();
    child = run(['serve', '--port', String(port)], dir);
    io = collect(child);
    await waitFor(() => io.out().includes('web page:'), 'the page URL');
  });

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the URL of its web page and serves it', async () => {
    expect(io.out()).toContain(`web page: http://127.0.0.1:${port}/`);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<title>peerfill</title>');
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('downloads a published file through a session, byte for byte', async () => {
    const list = fileListCodec.parse(await (await fetch(`http://127.0.0.1:${port}/files`)).json());
    expect(list.files.map((file) => file.name)).toContain('release 1.0.bin');
    const release = list.files.find((file) => file.name === 'release 1.0.bin')!;
    const created = await fetch(`http://127.0.0.1:${port}/downloads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file_id: release.file_id }),
    });
    expect(created.status).toBe(201);
    const session = createDownloadResponseCodec.parse(await created.json());
    const body = Buffer.from(await (await fetch(session.download_url)).arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(session.checksum.replace('sha256:', ''));
    const unknown = await fetch(`http://127.0.0.1:${port}/nope`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'PF_ERR_NOT_FOUND' } });
  });

  it('lets publishers on other origins use the API and the data plane (CORS)', async () => {
    const preflight = await fetch(`http://127.0.0.1:${port}/downloads`, {
      method: 'OPTIONS',
      headers: { origin: 'https://publisher.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PATCH');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    const list = fileListCodec.parse(await (await fetch(`http://127.0.0.1:${port}/files`, { headers: { origin: 'https://publisher.example' } })).json());
    const created = createDownloadResponseCodec.parse(
      await (await fetch(`http://127.0.0.1:${port}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: list.files[0]!.file_id }) })).json(),
    );
    const ranged = await fetch(created.download_url, { headers: { origin: 'https://publisher.example', range: 'bytes=0-99' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('access-control-allow-origin')).toBe('*');
    expect(ranged.headers.get('access-control-expose-headers')).toContain('content-range');
    await ranged.arrayBuffer();
  });

  it('publishes a file added while running, on SIGHUP', async () => {
    await writeFile(join(dir, 'data', 'files', 'late.bin'), randomBytes(1000));
    child.kill('SIGHUP');
    let names: string[] = [];
    const deadline = Date.now() + 20_000;
    while (!names.includes('late.bin') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      names = fileListCodec.parse(await (await fetch(`http://127.0.0.1:${port}/files`)).json()).files.map((file) => file.name);
    }
    expect(names).toContain('late.bin');
  });

  it('signs a URL from the command line with the keys the server uses', async () => {
    const list = fileListCodec.parse(await (await fetch(`http://127.0.0.1:${port}/files`)).json());
    const release = list.files.find((file) => file.name === 'release 1.0.bin')!;
    const signer = collect(run(['sign', release.file_id, '--expires-in', '60', '--port', String(port)], dir));
    expect(await signer.exit).toBe(0);
    const url = signer.out().trim();
    const exp = Number(new URL(url).searchParams.get('exp'));
    expect(exp - Date.now() / 1000).toBeLessThanOrEqual(61);
    const response = await fetch(url, { headers: { range: 'bytes=0-9' } });
    expect(response.status).toBe(206);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(content.subarray(0, 10));
  });

  it('shuts down on SIGTERM and keeps the tracker state on disk', async () => {
    child.kill('SIGTERM');
    expect(await io.exit).toBe(0);
    expect(existsSync(join(dir, 'data', 'tracker-snapshot.json'))).toBe(true);
  });
});

describe('peerfill CLI errors', () => {
  it('refuses to start with a bad configuration and lists every problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pf-cfg-'));
    try {
      const child = run(['serve', '--port', 'eighty', '--public-url', 'nope'], dir, { PEERFILL_SIGNING_KEYS: 'k:short' });
      const io = collect(child);
      expect(await io.exit).toBe(2);
      expect(io.err()).toContain('--port');
      expect(io.err()).toContain('--public-url');
      expect(io.err()).toContain('PEERFILL_SIGNING_KEYS');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('answers an unknown command with usage and exit 2', async () => {
    const io = collect(run(['frobnicate'], tmpdir()));
    expect(await io.exit).toBe(2);
    expect(io.err()).toContain('unknown command');
  });
});
