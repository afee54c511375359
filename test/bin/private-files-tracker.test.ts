import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Download } from '../../client/download.ts';
import { createClient } from '../../client/index.ts';
import { FileChunkStore } from '../../client/node/file-chunk-store.ts';
import { nodeClientOptions } from '../../client/node/node-runtime.ts';
import { SeedFileStore } from '../../client/node/seed-file-store.ts';
import { fileIdFor } from '../../origin/publish/catalog.ts';
import { FileListSchema, createCodec, createDownloadResponseCodec, hexToBinaryString, mintGrant, parseSigningKeys, sessionStateCodec, type CreateDownloadResponse } from '../../protocol/index.ts';
import { TestPeer, isAnnounceResponse, isFailure, isOffer } from '../tracker/fixtures/ws-client.ts';
import { contractViolation } from '../support/error-contract.ts';
import { freePort, waitFor } from '../support/net.ts';
import { startServeProcess, type ServeProcess } from './fixtures/serve-process.ts';

const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
const fileListCodec = createCodec(FileListSchema);
const SIGNING_KEYS = `k1:${randomBytes(24).toString('hex')}`;
const PUBLISHER_SECRET = `publisher-${randomBytes(16).toString('hex')}`;
const PUBLISHER_KEYS = `pub:${PUBLISHER_SECRET}`;
const publisherKey = (() => {
  const parsed = parseSigningKeys(PUBLISHER_KEYS);
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.keys[0]!;
})();
const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface TrackerProcess {
  base: string;
  out(): string;
  stop(): Promise<void>;
}

/** A real `peerfill tracker --origin` process (memory store) on loopback. */
async function startTracker(originBase: string, dataDir: string, env: Record<string, string>, args: string[] = []): Promise<TrackerProcess> {
  const port = await freePort();
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [CLI, 'tracker', '--origin', originBase, '--port', String(port), '--host', '127.0.0.1', '--announce-interval', '2', ...args], {
    env: { ...process.env, PEERFILL_LOG_LEVEL: 'warn', PEERFILL_DATA_DIR: dataDir, ...env },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(() => out.includes('peerfill tracker ') || child.exitCode !== null, 'peerfill tracker to start');
  if (child.exitCode !== null) throw new Error(`peerfill tracker exited: ${out}`);
  return {
    base: `http://127.0.0.1:${port}`,
    out: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Private files through a standalone `peerfill tracker` (no origin in its process) in front of
 * a `peerfill serve` origin, all real processes: the tracker learns a file's visibility from
 * the origin with a publisher API key, checks grants, and admits to the private swarm only
 * proven sessions. It runs --open, where an unknown hash would make a public swarm: the
 * private file's hash must not count as unknown.
 */
describe('private files on a standalone tracker', () => {
  let dir: string;
  let origin: ServeProcess;
  let tracker: TrackerProcess;
  let privateId: string;
  let publicId: string;
  let privateBytes: Buffer;
  const downloads: Download[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-private-tracker-'));
    await mkdir(join(dir, 'files', 'premium'), { recursive: true });
    privateBytes = randomBytes(3 * MiB);
    await writeFile(join(dir, 'files', 'premium', 'secret.bin'), privateBytes);
    await writeFile(join(dir, 'files', 'open.bin'), randomBytes(1000));
    const env = { PEERFILL_SIGNING_KEYS: SIGNING_KEYS, PEERFILL_PUBLISHER_KEYS: PUBLISHER_KEYS };
    origin = await startServeProcess({
      cwd: dir,
      args: ['--files', join(dir, 'files'), '--data-dir', join(dir, 'origin-data'), '--host', '127.0.0.1', '--egress-limit', String(256 * 1024)],
      env: { ...env, PEERFILL_PRIVATE_PREFIXES: 'premium/' },
    });
    tracker = await startTracker(origin.base, join(dir, 'tracker-data'), env, ['--open']);
    privateId = fileIdFor('dir:premium/secret.bin');
    publicId = fileListCodec.parse(await (await fetch(`${origin.base}/files`)).json()).files.find((file) => file.name === 'open.bin')!.file_id;
  }, 60_000);

  afterAll(async () => {
    for (const download of downloads) await download.destroy().catch(() => undefined);
    await tracker?.stop();
    await origin?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const grantFor = (user: string, fileId = privateId, expiresInSeconds = 600) =>
    mintGrant(publisherKey, { fileId, user, expiresAtSeconds: Math.floor(Date.now() / 1000) + expiresInSeconds });

  async function expectRefused(response: Response, status: number): Promise<void> {
    const text = await response.text();
    expect(contractViolation(response.status, text)).toBeUndefined();
    expect(response.status).toBe(status);
  }

  it('the origin lists private files, with their visibility, to a publisher key only', async () => {
    const ids = async (headers: Record<string, string>) =>
      fileListCodec.parse(await (await fetch(`${origin.base}/files`, { headers })).json()).files.map((file) => `${file.file_id}:${file.visibility}`).sort();
    expect(await ids({})).toEqual([`${publicId}:public`]);
    expect(await ids({ 'x-peerfill-key': 'not-the-publisher-secret-000' })).toEqual([`${publicId}:public`]);
    // A grant opens one file, not the listing.
    expect(await ids({ 'x-peerfill-grant': await grantFor('alice') })).toEqual([`${publicId}:public`]);
    expect(await ids({ 'x-peerfill-key': PUBLISHER_SECRET })).toEqual([`${privateId}:private`, `${publicId}:public`].sort());
  });

  it('opens sessions for a private file only with a grant for it or the key; its URLs open it at the origin', async () => {
    await expectRefused(await post(tracker.base, { file_id: privateId }), 403);
    const forged = `${(await grantFor('alice')).slice(0, -3)}AAA`;
    for (const grant of [forged, await grantFor('alice', privateId, -1), await grantFor('alice', publicId)]) await expectRefused(await post(tracker.base, { file_id: privateId, grant }), 403);
    await expectRefused(await post(tracker.base, { file_id: privateId }, { 'x-peerfill-key': 'not-the-publisher-secret-000' }), 403);
    // The public file needs nothing.
    expect((await post(tracker.base, { file_id: publicId })).status).toBe(201);

    const created = await post(tracker.base, { file_id: privateId, grant: await grantFor('bob') });
    expect(created.status).toBe(201);
    const session = createDownloadResponseCodec.parse(await created.json());
    expect((await post(tracker.base, { file_id: privateId }, { 'x-peerfill-key': PUBLISHER_SECRET })).status).toBe(201);
    // Minted by the tracker, verified by the origin: the signed manifest URL and the download URL.
    expect(new URL(session.manifest_url).origin).toBe(origin.base);
    expect((await fetch(session.manifest_url)).status).toBe(200);
    await expectRefused(await fetch(`${origin.base}/files/${privateId}/manifest`), 403);
    const bytes = Buffer.from(await (await fetch(session.download_url, { headers: { range: 'bytes=0-65535' } })).arrayBuffer());
    expect(sha256(bytes)).toBe(sha256(privateBytes.subarray(0, 65536)));
  });

  it('admits to the private swarm only proven sessions: a stranger gets no offer, no answer through; a granted leecher takes bytes from the seeder', async () => {
    const options = { ...nodeClientOptions(), eagerAnnounceMs: 500, chokeIntervalMs: 1000 };
    const seederClient = createClient({ ...options, seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY });
    const seeder = seederClient.download({ serverUrl: tracker.base, fileId: privateId, grant: await grantFor('seeder') }, new SeedFileStore(join(dir, 'files', 'premium', 'secret.bin')));
    downloads.push(seeder);
    await new Promise<void>((resolve, reject) => {
      seeder.on('status', ({ status }) => status === 'seeding' && resolve());
      seeder.on('error', reject);
      void seeder.start();
    });

    // A real client without a grant never gets a session.
    const stranger = createClient(options).download({ serverUrl: tracker.base, fileId: privateId }, new FileChunkStore(join(dir, 'stranger.bin')));
    downloads.push(stranger);
    const refused = await new Promise<unknown>((resolve) => {
      stranger.on('error', resolve);
      void stranger.start().catch(resolve);
    });
    expect(refused).toMatchObject({ code: 'PF_ERR_FORBIDDEN' });

    // A hand-made peer announcing anyway: no session, another file's proven session, a bad proof, an answer at the seeder.
    const infoHash = createDownloadResponseCodec.parse(await (await post(tracker.base, { file_id: privateId }, { 'x-peerfill-key': PUBLISHER_SECRET })).json()).info_hash;
    const publicSession: CreateDownloadResponse = createDownloadResponseCodec.parse(await (await post(tracker.base, { file_id: publicId })).json());
    const intruder = await TestPeer.connect(`${tracker.base.replace(/^http/, 'ws')}/announce`);
    const offers = [{ offer_id: 'intruder-offer-0001', offer: { type: 'offer', sdp: 'v=0 intruder' } }];
    intruder.announce(infoHash, { offers, numwant: 5 });
    intruder.announce(infoHash, { offers, numwant: 5, pf_session: publicSession.session_id, pf_proof: publicSession.announce_proof });
    intruder.announce(infoHash, { offers, numwant: 5, pf_session: publicSession.session_id, pf_proof: 'A'.repeat(43) });
    intruder.send({
      action: 'announce',
      info_hash: hexToBinaryString(infoHash),
      peer_id: intruder.peerId,
      to_peer_id: hexToBinaryString(seederClient.peerIdHex),
      offer_id: 'seeder-offer-guess0',
      answer: { type: 'answer', sdp: 'v=0 intruder' },
    });
    const failures: Record<string, unknown>[] = [];
    while (failures.length < 4) failures.push(await intruder.next(isFailure, 10_000, intruder.frames.indexOf(failures.at(-1)!) + 1));
    expect(failures.map((frame) => frame.pf_code)).toEqual(['PF_ERR_FORBIDDEN', 'PF_ERR_FORBIDDEN', 'PF_ERR_FORBIDDEN', 'PF_ERR_FORBIDDEN']);

    const leecher = createClient({ ...options, seedAfterDoneMs: 0 }).download({ serverUrl: tracker.base, fileId: privateId, grant: await grantFor('carol') }, new FileChunkStore(join(dir, 'carol.bin')));
    downloads.push(leecher);
    const done = await new Promise<{ sha256: string; fromPeersBytes: number }>((resolve, reject) => {
      leecher.on('done', ({ sha256: digest, progress }) => resolve({ sha256: digest, fromPeersBytes: progress.fromPeersBytes }));
      leecher.on('error', reject);
      void leecher.start();
    });
    expect(done.sha256).toBe(sha256(privateBytes));
    expect(sha256(await readFile(join(dir, 'carol.bin')))).toBe(sha256(privateBytes));
    console.log(`standalone tracker, private swarm: granted leecher got ${(done.fromPeersBytes / MiB).toFixed(1)} MiB from the seeder; intruder frames: ${intruder.frames.length}`);
    // HTTP is held to 256 KiB/s, so the admitted leecher takes part of the file from the seeder.
    expect(done.fromPeersBytes).toBeGreaterThan(0);
    expect(intruder.frames.filter(isOffer)).toEqual([]);
    expect(intruder.frames.filter(isAnnounceResponse)).toEqual([]);
    await intruder.close();
  }, 120_000);

  it("keeps a private file's sessions (memory store) across SIGTERM and a restart", async () => {
    const session = createDownloadResponseCodec.parse(await (await post(tracker.base, { file_id: privateId, grant: await grantFor('erin') })).json());
    const auth = { authorization: `Bearer ${session.session_token}` };
    const patched = await fetch(`${tracker.base}/downloads/${session.session_id}`, { method: 'PATCH', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ status: 'paused', bytes_from_http: 4096 }) });
    expect(patched.status).toBe(200);
    await tracker.stop();
    expect(tracker.out()).not.toMatch(/session snapshot failed/);
    tracker = await startTracker(origin.base, join(dir, 'tracker-data'), { PEERFILL_SIGNING_KEYS: SIGNING_KEYS, PEERFILL_PUBLISHER_KEYS: PUBLISHER_KEYS }, ['--open']);
    const answer = await fetch(`${tracker.base}/downloads/${session.session_id}`, { headers: auth });
    expect(answer.status).toBe(200);
    expect(sessionStateCodec.parse(await answer.json())).toMatchObject({ file_id: privateId, status: 'paused', bytes_from_http: 4096 });
  }, 60_000);

  it('a tracker without the publisher keys answers a private file as not found, never 500', async () => {
    const keyless = await startTracker(origin.base, join(dir, 'keyless-data'), { PEERFILL_SIGNING_KEYS: SIGNING_KEYS });
    try {
      await expectRefused(await post(keyless.base, { file_id: privateId, grant: await grantFor('dave') }), 404);
      expect((await post(keyless.base, { file_id: publicId })).status).toBe(201);
      expect(keyless.out()).toMatch(/no PEERFILL_PUBLISHER_KEYS: this tracker serves public files only/);
    } finally {
      await keyless.stop();
    }
  }, 60_000);
});
