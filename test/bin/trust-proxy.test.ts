import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec } from '../../protocol/index.ts';
import { freePort, waitFor } from '../support/net.ts';
import { startServeProcess, type ServeProcess } from './fixtures/serve-process.ts';

const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
const fileListCodec = createCodec(FileListSchema);
const KEYS = `k1:${randomBytes(24).toString('hex')}`;
/** Two sessions per client address, then 429 for a second. */
const LIMIT_ENV = { PEERFILL_SIGNING_KEYS: KEYS, PEERFILL_SESSION_BURST: '2', PEERFILL_SESSION_RATE_PER_SECOND: '1' };

let dir: string;
const servers: ServeProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-trust-proxy-'));
  await mkdir(join(dir, 'data', 'files'), { recursive: true });
  await writeFile(join(dir, 'data', 'files', 'small.bin'), randomBytes(64 * 1024));
});
afterAll(async () => {
  for (const server of servers.splice(0)) await server.stop();
  await rm(dir, { recursive: true, force: true });
});

async function serve(args: string[]): Promise<ServeProcess> {
  // Each process its own state (snapshot, manifest cache); the files are shared.
  const dataDir = join(dir, `state-${servers.length}`);
  const server = await startServeProcess({ cwd: dir, args: ['--files', join(dir, 'data', 'files'), '--data-dir', dataDir, ...args], env: LIMIT_ENV });
  servers.push(server);
  return server;
}

async function fileIdOf(base: string): Promise<string> {
  return fileListCodec.parse(await (await fetch(`${base}/files`)).json()).files[0]!.file_id;
}

/** POST /downloads from this machine (127.0.0.1), naming `forwardedFor` as the client. */
async function createStatuses(base: string, fileId: string, forwardedFor: string[]): Promise<number[]> {
  const statuses: number[] = [];
  for (const client of forwardedFor) {
    const response = await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': client }, body: JSON.stringify({ file_id: fileId }) });
    await response.arrayBuffer();
    statuses.push(response.status);
  }
  return statuses;
}

describe('--trust-proxy on the real commands', () => {
  it('peerfill serve: ignores X-Forwarded-For by default, believes it from a trusted proxy', async () => {
    const open = await serve([]);
    const fileId = await fileIdOf(open.base);
    expect(await createStatuses(open.base, fileId, ['203.0.113.1', '203.0.113.2', '203.0.113.3'])).toEqual([201, 201, 429]);
    const proxied = await serve(['--trust-proxy', '127.0.0.1']);
    expect(await createStatuses(proxied.base, fileId, ['203.0.113.1', '203.0.113.1', '203.0.113.1', '203.0.113.2'])).toEqual([201, 201, 429, 201]);
    // An IPv6 client is its /64.
    expect(await createStatuses(proxied.base, fileId, ['2001:db8:5:5::1', '2001:db8:5:5::2', '2001:db8:5:5::3', '2001:db8:5:6::1'])).toEqual([201, 201, 429, 201]);
  }, 60_000);

  it('peerfill tracker: takes --trust-proxy (and PEERFILL_TRUST_PROXY) too', async () => {
    const origin = servers[0] ?? (await serve([]));
    const fileId = await fileIdOf(origin.base);
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'tracker', '--origin', origin.base, '--port', String(port), '--host', '127.0.0.1'], {
      cwd: dir,
      env: { ...process.env, ...LIMIT_ENV, PEERFILL_TRUST_PROXY: 'loopback', PEERFILL_DATA_DIR: join(dir, 'tracker-data'), PEERFILL_LOG_LEVEL: 'warn' },
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    try {
      await waitFor(() => out.includes('peerfill tracker ') || child.exitCode !== null, 'the tracker to start');
      expect(child.exitCode, out).toBeNull();
      const base = `http://127.0.0.1:${port}`;
      expect(await createStatuses(base, fileId, ['198.51.100.1', '198.51.100.1', '198.51.100.1', '::ffff:198.51.100.2'])).toEqual([201, 201, 429, 201]);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);

  it('refuses a bad --trust-proxy at start-up, naming it', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--trust-proxy', '10.0.0.0/40,everyone'], { cwd: dir, env: { ...process.env, PEERFILL_LOG_LEVEL: 'warn' } });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(err).toMatch(/--trust-proxy \/ PEERFILL_TRUST_PROXY: "10\.0\.0\.0\/40"/);
    expect(err).toMatch(/--trust-proxy \/ PEERFILL_TRUST_PROXY: "everyone"/);
  }, 30_000);
});
