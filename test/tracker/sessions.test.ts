import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  Bitfield,
  createDownloadResponseCodec,
  hexToBinaryString,
  progressCodec,
  sessionStateCodec,
  verifySignedPath,
  type CreateDownloadResponse,
} from '../../protocol/index.ts';
import { createStore, type Store } from '../../tracker/index.ts';
import { SIGNING_KEYS, captureLogger, fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { TestPeer, eventually, isAnnounceResponse } from './fixtures/ws-client.ts';

let fixture: Fixture;
let running: RunningTracker | undefined;
let store: Store | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
/** The sessions' clock: tests move it instead of sleeping through TTLs. */
let nowMs = Date.now();
const clock = () => nowMs;

beforeAll(async () => {
  fixture = await fixtureFiles();
});
beforeEach(() => {
  nowMs = Date.now();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await running?.close();
  await store?.close();
  running = undefined;
  store = undefined;
});

async function start(config: Parameters<typeof startTracker>[0]['config'] = {}, snapshotPath?: string, logger = pino({ level: 'silent' })): Promise<RunningTracker> {
  store = await createStore({ kind: 'memory', snapshotPath, snapshotIntervalMs: 100, now: clock }, { logger });
  running = await startTracker({ store, directory: fixture.directory, config, logger, now: clock });
  return running;
}

async function api(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${running!.baseUrl}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const value: unknown = await response.json();
  return { status: response.status, body: typeof value === 'object' && value !== null ? { ...value } : {} };
}

async function createDownload(fileId = 'alpha'): Promise<CreateDownloadResponse> {
  const { status, body } = await api('POST', '/downloads', { body: { file_id: fileId, client_id: 'test-client' } });
  expect(status).toBe(201);
  return createDownloadResponseCodec.parse(body);
}

const alphaChunks = () => fixture.files[0]!.chunks.length;
const haveOf = (indexes: number[]) => {
  const bits = new Bitfield(alphaChunks());
  for (const index of indexes) bits.set(index);
  return bits.toBase64Url();
};

describe('download sessions', () => {
  it('creates a session with signed URL, manifest and tracker URLs', async () => {
    await start();
    const created = await createDownload();
    const alpha = fixture.files[0]!;
    expect(created).toMatchObject({
      file_size: alpha.size,
      checksum: `sha256:${alpha.sha256}`,
      content_type: 'application/octet-stream',
      info_hash: alpha.info_hash,
      manifest_url: `${running!.baseUrl}/files/alpha/manifest`,
      tracker_url: running!.wsUrl,
    });
    expect(created.session_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const url = new URL(created.download_url);
    expect(await verifySignedPath(SIGNING_KEYS, 'GET', url.pathname, Object.fromEntries(url.searchParams), Math.floor(Date.now() / 1000))).toBe('ok');
    expect(Date.parse(created.expires_at)).toBeGreaterThan(Date.now());

    const state = await api('GET', `/downloads/${created.session_id}`, { token: created.session_token });
    expect(state.status).toBe(200);
    expect(sessionStateCodec.parse(state.body)).toMatchObject({ status: 'active', bytes_confirmed: 0, contiguous_bytes: 0, total_bytes: alpha.size, have: haveOf([]) });
    const progress = await api('GET', `/downloads/${created.session_id}/progress`, { token: created.session_token });
    expect(progressCodec.parse(progress.body)).toEqual({ bytes_confirmed: 0, total_bytes: alpha.size, percentage: 0, status: 'active', transfer_rate_bps: 0, bytes_from_peers: 0, bytes_from_http: 0 });
  });

  it('rejects bad bodies and unknown files', async () => {
    await start();
    expect(await api('POST', '/downloads', { body: { file_id: 'nope' } })).toMatchObject({ status: 404, body: { error: { code: 'PF_ERR_FILE_NOT_FOUND' } } });
    expect(await api('POST', '/downloads', { body: { file_id: '../etc' } })).toMatchObject({ status: 400, body: { error: { code: 'PF_ERR_VALIDATION' } } });
    expect(await api('POST', '/downloads', { body: { file_id: 'alpha', extra: 1 } })).toMatchObject({ status: 400 });
    const created = await createDownload();
    for (const body of [{ status: 'exploded' }, { bytes_confirmed: -1 }, { have: 'AAAA' }, { bytes_confirmed: fixture.files[0]!.size + 1 }]) {
      expect(await api('PATCH', `/downloads/${created.session_id}`, { token: created.session_token, body })).toMatchObject({ status: 400 });
    }
  });

  it('guards every endpoint with the session token', async () => {
    await start();
    const mine = await createDownload();
    const theirs = await createDownload('beta');
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['GET', '/progress', undefined],
      ['PATCH', '', { status: 'paused' }],
    ] as const) {
      const path = `/downloads/${mine.session_id}${suffix}`;
      expect((await api(method, path, { body })).status).toBe(401);
      expect((await api(method, path, { body, token: 'short' })).status).toBe(401);
      // Another session's (valid) token reads nothing of this one.
      const wrong = await api(method, path, { body, token: theirs.session_token });
      expect(wrong.status).toBe(404);
      expect(JSON.stringify(wrong.body)).not.toContain(mine.info_hash);
      expect((await api(method, `/downloads/does-not-exist-at-all${suffix}`, { body, token: mine.session_token })).status).toBe(404);
    }
    // The wrong-token PATCH changed nothing.
    expect((await api('GET', `/downloads/${mine.session_id}`, { token: mine.session_token })).body.status).toBe('active');
  });

  it("hands out the publisher's speed floor with the session, on resume too; none when unset", async () => {
    await start({ speedFloorBitsPerSecond: 50_000_000 });
    const created = await createDownload();
    expect(created.speed_floor_bps).toBe(50_000_000);
    const resumed = await api('PATCH', `/downloads/${created.session_id}`, { token: created.session_token, body: { status: 'resumed' } });
    expect(resumed.body.speed_floor_bps).toBe(50_000_000);
    await running?.close();
    await store?.close();
    await start();
    expect((await createDownload()).speed_floor_bps).toBeUndefined();
  });

  it('pauses and resumes idempotently, with a fresh URL on resume', async () => {
    await start();
    const created = await createDownload();
    const path = `/downloads/${created.session_id}`;
    const token = created.session_token;
    const body = { status: 'paused', have: haveOf([0]), bytes_from_http: 262144 };
    const first = await api('PATCH', path, { token, body });
    const second = await api('PATCH', path, { token, body });
    expect(first.status).toBe(200);
    const strip = (state: Record<string, unknown>) => ({ ...state, updated_at: undefined, expires_at: undefined });
    expect(strip(second.body)).toEqual(strip(first.body));
    expect(first.body).toMatchObject({ status: 'paused', bytes_confirmed: 262144, contiguous_bytes: 262144, bytes_from_http: 262144, transfer_rate_bps: 0 });

    nowMs += 2000; // URLs carry second-resolution expiry
    const resumed = await api('PATCH', path, { token, body: { status: 'resumed' } });
    expect(resumed.body.status).toBe('active');
    expect(resumed.body.download_url).not.toBe(created.download_url);
    const url = new URL(String(resumed.body.download_url));
    expect(await verifySignedPath(SIGNING_KEYS, 'GET', url.pathname, Object.fromEntries(url.searchParams), Math.floor(Date.now() / 1000))).toBe('ok');

    // Gaps: contiguous stops at the first missing chunk; the last chunk may be short.
    const gap = await api('PATCH', path, { token, body: { have: haveOf([0, 2]), bytes_from_peers: 100, bytes_from_http: 262144 } });
    const alpha = fixture.files[0]!;
    expect(gap.body).toMatchObject({ bytes_confirmed: 262144 + (alpha.size - 2 * 262144), contiguous_bytes: 262144, bytes_from_peers: 100 });
    // Counters never go backwards.
    expect((await api('PATCH', path, { token, body: { bytes_from_peers: 50 } })).body.bytes_from_peers).toBe(100);
    const done = await api('PATCH', path, { token, body: { have: haveOf([0, 1, 2]) } });
    expect(done.body).toMatchObject({ status: 'completed', bytes_confirmed: alpha.size, contiguous_bytes: alpha.size });
    expect((await api('GET', `${path}/progress`, { token })).body).toMatchObject({ percentage: 100, status: 'completed' });
  });

  it('takes progress from pf_* fields on announces, only for the matching swarm', async () => {
    await start();
    const created = await createDownload();
    const peer = await TestPeer.connect(running!.wsUrl);
    cleanups.push(() => peer.close());
    const other = fixture.files[1]!.info_hash;
    const proof = created.announce_proof;
    peer.announce(other, { pf_session: created.session_id, pf_proof: proof, pf_have: haveOf([0]), pf_from_peers: 5 });
    await peer.next(isAnnounceResponse);
    peer.announce(created.info_hash, { pf_session: created.session_id, pf_proof: proof, pf_have: haveOf([0, 1]), pf_from_peers: 1000, pf_from_http: 2000 });
    await eventually(async () => (await api('GET', `/downloads/${created.session_id}`, { token: created.session_token })).body.bytes_from_peers === 1000);
    const state = await api('GET', `/downloads/${created.session_id}`, { token: created.session_token });
    expect(state.body).toMatchObject({ bytes_confirmed: 2 * 262144, contiguous_bytes: 2 * 262144, bytes_from_http: 2000 });
    const metrics = await (await fetch(`${running!.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/peerfill_tracker_reported_bytes_total\{file_id="alpha",source="peers"\} 1000/);
    expect(metrics).toMatch(/peerfill_tracker_reported_bytes_total\{file_id="alpha",source="http"\} 2000/);
    peer.announce(created.info_hash, { event: 'paused', pf_session: created.session_id, pf_proof: proof });
    await eventually(async () => (await api('GET', `/downloads/${created.session_id}`, { token: created.session_token })).body.status === 'paused');
    expect(hexToBinaryString(created.info_hash)).toHaveLength(20);
  });

  it("ignores pf_* fields without a proof of the session's token, and clamps counters to the file", async () => {
    await start();
    const victim = await createDownload();
    const stranger = await createDownload();
    const peer = await TestPeer.connect(running!.wsUrl);
    cleanups.push(() => peer.close());
    const read = async () => (await api('GET', `/downloads/${victim.session_id}`, { token: victim.session_token })).body;
    const before = await read();
    const forged = 'A'.repeat(43);
    for (const pf_proof of [undefined, forged, stranger.announce_proof]) {
      const mark = peer.mark();
      peer.announce(victim.info_hash, { event: 'completed', left: 0, pf_session: victim.session_id, pf_proof, pf_have: haveOf([0, 1, 2]), pf_from_peers: 1e300 });
      await peer.next(isAnnounceResponse, 10_000, mark);
      peer.announce(victim.info_hash, { event: 'paused', pf_session: victim.session_id, pf_proof });
      await peer.next(isAnnounceResponse, 10_000, mark + 1);
    }
    // Every announce was answered; give the (asynchronous) session updates a moment to land, if they were to.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = await read();
    expect(after).toMatchObject({ status: 'active', bytes_confirmed: 0, bytes_from_peers: 0, have: before.have });
    const metrics = await (await fetch(`${running!.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/reason="session_fields_ignored"\} 6/);
    // With the proof, an absurd counter is clamped to the file's size, and survives a snapshot schema.
    peer.announce(victim.info_hash, { pf_session: victim.session_id, pf_proof: victim.announce_proof, pf_from_peers: 1e300, pf_from_http: 5e15 });
    const size = fixture.files[0]!.size;
    await eventually(async () => (await read()).bytes_from_peers === size);
    expect(await read()).toMatchObject({ bytes_from_peers: size, bytes_from_http: size });
  });

  it('expires idle sessions', async () => {
    await start({ sessionIdleTtlSeconds: 1 });
    const created = await createDownload();
    const path = `/downloads/${created.session_id}`;
    expect((await api('GET', path, { token: created.session_token })).body.status).toBe('active');
    nowMs += 1500;
    const expired = await api('GET', path, { token: created.session_token });
    expect(expired.body.status).toBe('expired');
    expect(expired.body.download_url).toBeUndefined();
    expect(await api('PATCH', path, { token: created.session_token, body: { status: 'resumed' } })).toMatchObject({ status: 410, body: { error: { code: 'PF_ERR_SESSION_EXPIRED' } } });
  });

  it('keeps sessions across a restart through the snapshot, and survives a torn snapshot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pf-snapshot-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const snapshotPath = join(dir, 'tracker-snapshot.json');
    await start({}, snapshotPath);
    const created = await createDownload();
    await api('PATCH', `/downloads/${created.session_id}`, { token: created.session_token, body: { status: 'paused', have: haveOf([0]) } });
    await running!.close();
    await store!.close(); // final snapshot at shutdown
    running = undefined;

    await start({}, snapshotPath);
    const state = await api('GET', `/downloads/${created.session_id}`, { token: created.session_token });
    expect(state.body).toMatchObject({ status: 'paused', bytes_confirmed: 262144, have: haveOf([0]) });
    await running!.close();
    await store!.close();
    running = undefined;

    // Tear the file in half: reported, moved aside, not trusted, no crash.
    const text = await readFile(snapshotPath, 'utf8');
    await writeFile(snapshotPath, text.slice(0, Math.floor(text.length / 2)));
    const { logger, lines } = captureLogger();
    await start({}, snapshotPath, logger);
    expect(lines.some((line) => line.level === 50 && String(line.msg).includes('snapshot is corrupt'))).toBe(true);
    expect((await readdir(dir)).some((name) => name.includes('.corrupt-'))).toBe(true);
    expect((await api('GET', `/downloads/${created.session_id}`, { token: created.session_token })).status).toBe(404);
    // A bit flip with valid JSON is caught by the checksum.
    await running!.close();
    await store!.close();
    running = undefined;
    await start({}, snapshotPath);
    await createDownload();
    await store!.close(); // writes a fresh snapshot
    const good = await readFile(snapshotPath, 'utf8');
    expect(good).toContain('"status":"active"');
    await writeFile(snapshotPath, good.replace('"status":"active"', '"status":"paused"'));
    await running!.close();
    running = undefined;
    const second = captureLogger();
    await start({}, snapshotPath, second.logger);
    expect(second.lines.some((line) => line.level === 50 && line.reason === 'checksum mismatch')).toBe(true);
  });

  it('answers 503 when the store is down', async () => {
    await start();
    const created = await createDownload();
    await store!.close();
    expect(await api('GET', `/downloads/${created.session_id}`, { token: created.session_token })).toMatchObject({ status: 503, body: { error: { code: 'PF_ERR_STORE_UNAVAILABLE' } } });
  });
});
