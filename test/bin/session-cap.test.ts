import { request } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec, createDownloadResponseCodec, sessionStateCodec, type CreateDownloadResponse } from '../../protocol/index.ts';
import { startServeProcess } from './fixtures/serve-process.ts';

const fileListCodec = createCodec(FileListSchema);
const CAP = 3000;

/** POST /downloads from a chosen local address (rate limits are per client address). */
function createFrom(base: string, fileId: string, localAddress = '127.0.0.1'): Promise<{ status: number; retryAfter: string | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify({ file_id: fileId });
    const req = request(`${base}/downloads`, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: JSON.parse(text) as unknown }));
    });
    req.once('error', reject);
    req.end(payload);
  });
}

async function inBatches<T>(count: number, batch: number, make: (index: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < count; start += batch) out.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, i) => make(start + i)))));
  return out;
}

describe('session cap, rate limit and snapshot across SIGTERM (real peerfill serve process)', () => {
  let dir: string;
  let fileId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-cap-'));
    await mkdir(join(dir, 'data', 'files'), { recursive: true });
    await writeFile(join(dir, 'data', 'files', 'a.bin'), Buffer.alloc(600 * 1024, 3));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rate-limits session creation per client address with 429 and Retry-After', async () => {
    const server = await startServeProcess({ cwd: dir, args: ['--data-dir', join(dir, 'rate')], env: { PEERFILL_FILES_DIR: join(dir, 'data', 'files'), PEERFILL_SESSION_RATE_PER_SECOND: '1', PEERFILL_SESSION_BURST: '10' } });
    try {
      fileId = fileListCodec.parse(await (await fetch(`${server.base}/files`)).json()).files[0]!.file_id;
      const answers = [];
      for (let index = 0; index < 15; index++) answers.push(await createFrom(server.base, fileId));
      const statuses = answers.map((answer) => answer.status);
      // The burst, perhaps one refilled token, then refusals.
      expect(statuses.filter((status) => status === 201).length).toBeGreaterThanOrEqual(10);
      expect(statuses.filter((status) => status === 201).length).toBeLessThanOrEqual(11);
      const refused = answers.find((answer) => answer.status === 429)!;
      expect(refused.body).toMatchObject({ error: { code: 'PF_ERR_RATE_LIMITED' } });
      expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
      // Another address is not held back by this one.
      expect((await createFrom(server.base, fileId, '127.0.0.2')).status).toBe(201);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it(`holds ${CAP} sessions at the cap, refuses more, and loses none across SIGTERM and a restart`, async () => {
    const env = { PEERFILL_FILES_DIR: join(dir, 'data', 'files'), PEERFILL_MAX_SESSIONS: String(CAP), PEERFILL_SESSION_BURST: String(CAP * 2), PEERFILL_SESSION_RATE_PER_SECOND: '1000' };
    const first = await startServeProcess({ cwd: dir, args: ['--data-dir', join(dir, 'cap')], env });
    let sessions: CreateDownloadResponse[];
    try {
      sessions = await inBatches(CAP, 50, async () => {
        const answer = await createFrom(first.base, fileId);
        expect(answer.status).toBe(201);
        return createDownloadResponseCodec.parse(answer.body);
      });
      const over = await createFrom(first.base, fileId);
      expect(over.status).toBe(429);
      expect(over.body).toMatchObject({ error: { code: 'PF_ERR_RATE_LIMITED' } });
      expect(Number(over.retryAfter)).toBeGreaterThanOrEqual(1);
      // Some state to find again: every tenth session paused.
      await inBatches(CAP / 10, 50, async (index) => {
        const session = sessions[index * 10]!;
        const response = await fetch(`${first.base}/downloads/${session.session_id}`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${session.session_token}` },
          body: JSON.stringify({ status: 'paused', bytes_from_http: 1000 }),
        });
        expect(response.status).toBe(200);
      });
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0);
    }
    const snapshot = await readFile(join(dir, 'cap', 'tracker-snapshot.json'), 'utf8');
    expect(snapshot.split('\n').filter((line) => line.includes('"session_id"')).length).toBe(CAP);
    expect(snapshot).not.toContain('sig=');
    const second = await startServeProcess({ cwd: dir, args: ['--data-dir', join(dir, 'cap')], env, port: first.port });
    try {
      const states = await inBatches(CAP, 50, async (index) => {
        const session = sessions[index]!;
        const response = await fetch(`${second.base}/downloads/${session.session_id}`, { headers: { authorization: `Bearer ${session.session_token}` } });
        expect(response.status).toBe(200);
        return sessionStateCodec.parse(await response.json());
      });
      expect(states.filter((state) => state.status === 'paused' && state.bytes_from_http === 1000).length).toBe(CAP / 10);
      expect(states.filter((state) => state.status === 'active').length).toBe(CAP - CAP / 10);
      // A fresh URL for each answer; the snapshot kept none.
      expect(states.every((state) => state.download_url?.includes('sig='))).toBe(true);
      // Still full after the restart.
      expect((await createFrom(second.base, fileId)).status).toBe(429);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
