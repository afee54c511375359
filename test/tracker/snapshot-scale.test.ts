import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../tracker/store/store-memory.ts';
import type { SessionRecord } from '../../tracker/sessions/session-record.ts';

const SESSIONS = 200_000;
const logger = pino({ level: 'silent' });

function record(index: number, now: number): SessionRecord {
  return {
    session_id: `s${index.toString(36).padStart(20, '0')}`,
    token_sha256: randomBytes(32).toString('hex'),
    client_id: 'bench-client',
    file_id: 'alpha',
    info_hash: 'ab'.repeat(20),
    checksum: `sha256:${'cd'.repeat(32)}`,
    total_bytes: 4_000_000_000,
    chunk_size: 4 * 1024 * 1024,
    chunk_count: 954,
    status: 'active',
    have: 'A'.repeat(160),
    bytes_confirmed: 0,
    contiguous_bytes: 0,
    bytes_from_peers: index,
    bytes_from_http: 0,
    transfer_rate_bps: 0,
    rate_sampled_at_ms: now,
    created_at_ms: now,
    updated_at_ms: now,
    expires_at_ms: now + 3_600_000,
  };
}

/** The largest gap between ticks of a 1 ms timer while `work` runs: how long the loop was held. */
async function maxLoopStallMs(work: () => Promise<unknown>): Promise<{ maxGapMs: number; totalMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await work();
  const totalMs = performance.now() - started;
  clearInterval(timer);
  return { maxGapMs, totalMs };
}

describe('memory store snapshot at scale', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-snapshot-scale-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`streams ${SESSIONS} sessions to disk without holding the loop, and loads every one back`, async () => {
    const path = join(dir, 'tracker-snapshot.json');
    const store = new MemoryStore({ snapshotPath: path, maxSessions: SESSIONS }, logger);
    await store.start();
    const now = Date.now();
    for (let index = 0; index < SESSIONS; index++) await store.createSession(record(index, now), 3600);
    const { maxGapMs, totalMs } = await maxLoopStallMs(() => store.snapshot());
    const bytes = (await stat(path)).size;
    console.log(`snapshot of ${SESSIONS} sessions: ${(bytes / 1024 / 1024).toFixed(0)} MiB in ${totalMs.toFixed(0)} ms; longest loop stall ${maxGapMs.toFixed(1)} ms`);
    // Same-run ratio, wide margin: the write is many slices, none of them a large part of it.
    expect(maxGapMs).toBeLessThan(totalMs / 10);
    await store.close();

    const reloaded = new MemoryStore({ snapshotPath: path, maxSessions: SESSIONS }, logger);
    await reloaded.start();
    expect(reloaded.snapshotLoad).toEqual({ status: 'loaded', sessions: SESSIONS, skipped: 0 });
    expect(await reloaded.getSession(record(SESSIONS - 1, now).session_id)).toMatchObject({ bytes_from_peers: SESSIONS - 1 });
    await reloaded.close();
  }, 120_000);
});
