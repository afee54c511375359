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
import { loadServerConfig } from '../../bin/config.ts';
import { fileIdFor } from '../../origin/publish/catalog.ts';
import { createLogger } from '../../bin/logger.ts';
import { buildServer, type Server } from '../../bin/serve.ts';
import { FileListSchema, createCodec, createDownloadResponseCodec, hexToBinaryString, mintGrant, parseSigningKeys, type CreateDownloadResponse } from '../../protocol/index.ts';
import { TestPeer, isAnnounceResponse, isFailure, isOffer } from '../tracker/fixtures/ws-client.ts';
import { contractViolation } from '../support/error-contract.ts';
import { freePort } from '../support/net.ts';

const fileListCodec = createCodec(FileListSchema);
const PUBLISHER_KEYS = 'new:new-publisher-secret-0123456789,old:old-publisher-secret-0123456789';
const keys = (() => {
  const parsed = parseSigningKeys(PUBLISHER_KEYS);
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.keys;
})();
const [newKey, oldKey] = [keys[0]!, keys[1]!];
const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Private files end to end, against the real `serve` composition: who may list, read the
 * manifest, open a session, fetch bytes and join the swarm, with a real WebRTC seeder.
 */
describe('private files and publisher grants', () => {
  let dir: string;
  let server: Server;
  let base: string;
  let privateId: string;
  let publicId: string;
  let privateBytes: Buffer;
  const downloads: Download[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-private-'));
    await mkdir(join(dir, 'files', 'premium'), { recursive: true });
    privateBytes = randomBytes(3 * MiB);
    await writeFile(join(dir, 'files', 'premium', 'secret.bin'), privateBytes);
    await writeFile(join(dir, 'files', 'open.bin'), randomBytes(1000));
    const port = await freePort();
    const config = loadServerConfig(
      ['--files', join(dir, 'files'), '--data-dir', join(dir, 'data'), '--port', String(port), '--log-level', 'silent', '--announce-interval', '2', '--egress-limit', String(256 * 1024)],
      { PEERFILL_PUBLISHER_KEYS: PUBLISHER_KEYS, PEERFILL_PRIVATE_PREFIXES: 'premium/' },
      dir,
    );
    server = await buildServer(config, createLogger('silent'));
    await server.app.listen({ port, host: '127.0.0.1' });
    base = `http://127.0.0.1:${port}`;
    const listed = fileListCodec.parse(await (await fetch(`${base}/files`)).json()).files;
    publicId = listed.find((file) => file.name === 'open.bin')!.file_id;
    // Not listed: its publisher knows the id (derived from where the file lives).
    privateId = fileIdFor('dir:premium/secret.bin');
    expect((await server.origin.directory.getByFileId(privateId))?.isPrivate).toBe(true);
  }, 60_000);

  afterAll(async () => {
    for (const download of downloads) await download.destroy().catch(() => undefined);
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  async function expectForbidden(response: Response): Promise<void> {
    const text = await response.text();
    expect(contractViolation(response.status, text)).toBeUndefined();
    expect(response.status).toBe(403);
  }

  it('keeps a private file out of the listing, its entry and manifest behind a grant or key', async () => {
    const listed = fileListCodec.parse(await (await fetch(`${base}/files`)).json()).files;
    expect(listed.map((file) => file.file_id)).toEqual([publicId]);
    await expectForbidden(await fetch(`${base}/files/${privateId}`));
    await expectForbidden(await fetch(`${base}/files/${privateId}/manifest`));
    const grant = await mintGrant(newKey, { fileId: privateId, user: 'alice', expiresAtSeconds: Math.floor(Date.now() / 1000) + 600 });
    const manifest = await fetch(`${base}/files/${privateId}/manifest`, { headers: { 'x-peerfill-grant': grant } });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('cache-control')).toBe('private, no-store');
    expect((await fetch(`${base}/files/${privateId}`, { headers: { 'x-peerfill-key': 'new-publisher-secret-0123456789' } })).status).toBe(200);
    // The public file needs nothing.
    expect((await fetch(`${base}/files/${publicId}/manifest`)).status).toBe(200);
  });

  it('opens sessions for a private file only with a valid grant for it, or a publisher key', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectForbidden(await post({ file_id: privateId }));
    const forged = `${(await mintGrant(newKey, { fileId: privateId, user: 'alice', expiresAtSeconds: now + 600 })).slice(0, -3)}AAA`;
    const expired = await mintGrant(newKey, { fileId: privateId, user: 'alice', expiresAtSeconds: now - 1 });
    const otherFile = await mintGrant(newKey, { fileId: publicId, user: 'alice', expiresAtSeconds: now + 600 });
    const unknownKey = await mintGrant({ kid: 'gone', secret: new TextEncoder().encode('some-other-secret-0123456789') }, { fileId: privateId, user: 'alice', expiresAtSeconds: now + 600 });
    for (const grant of [forged, expired, otherFile, unknownKey]) await expectForbidden(await post({ file_id: privateId, grant }));
    await expectForbidden(await post({ file_id: privateId }, { 'x-peerfill-key': 'not-the-publisher-secret-000' }));

    // Rotation: a grant of the older key still opens it, as does the API key.
    const rotated = await mintGrant(oldKey, { fileId: privateId, user: 'bob', expiresAtSeconds: now + 600 });
    const created = await post({ file_id: privateId, grant: rotated });
    expect(created.status).toBe(201);
    const session = createDownloadResponseCodec.parse(await created.json());
    expect((await post({ file_id: privateId }, { 'x-peerfill-key': 'old-publisher-secret-0123456789' })).status).toBe(201);
    // The session's manifest URL is signed: it opens the manifest, and only that.
    expect((await fetch(session.manifest_url)).status).toBe(200);
    expect(new URL(session.manifest_url).searchParams.get('sig')).toBeTruthy();
    const bytes = Buffer.from(await (await fetch(session.download_url, { headers: { range: 'bytes=0-65535' } })).arrayBuffer());
    expect(sha256(bytes)).toBe(sha256(privateBytes.subarray(0, 65536)));
    // Without a signed URL, the data plane gives no byte.
    const unsigned = await fetch(new URL(session.download_url).pathname.replace(/^/, base));
    expect(unsigned.status).toBe(403);
    expect((await unsigned.text()).includes(privateBytes.subarray(0, 16).toString('latin1'))).toBe(false);
  });

  it('admits to the swarm only peers with a proven session: a stranger gets no offer, no answer through, no byte', async () => {
    const now = Math.floor(Date.now() / 1000);
    const grantFor = (user: string) => mintGrant(newKey, { fileId: privateId, user, expiresAtSeconds: now + 600 });
    const path = join(dir, 'files', 'premium', 'secret.bin');
    const options = { ...nodeClientOptions(), eagerAnnounceMs: 500, chokeIntervalMs: 1000 };
    const seederClient = createClient({ ...options, seedOnly: true, seedAfterDoneMs: Number.POSITIVE_INFINITY });
    const seeder = seederClient.download({ serverUrl: base, fileId: privateId, grant: await grantFor('seeder') }, new SeedFileStore(path));
    downloads.push(seeder);
    await new Promise<void>((resolve, reject) => {
      seeder.on('status', ({ status }) => status === 'seeding' && resolve());
      seeder.on('error', reject);
      void seeder.start();
    });

    // A real client without a grant never gets a session, so never reaches the swarm.
    const stranger = createClient(options).download({ serverUrl: base, fileId: privateId }, new FileChunkStore(join(dir, 'stranger.bin')));
    downloads.push(stranger);
    const refused = await new Promise<unknown>((resolve) => {
      stranger.on('error', resolve);
      void stranger.start().catch(resolve);
    });
    expect(refused).toMatchObject({ code: 'PF_ERR_FORBIDDEN' });

    // A hand-made peer that announces anyway, with offers: refused, and nothing relayed to it.
    const manifestInfoHash = (await server.origin.directory.getByFileId(privateId))!.manifest.info_hash;
    const publicSession: CreateDownloadResponse = createDownloadResponseCodec.parse(await (await post({ file_id: publicId })).json());
    const intruder = await TestPeer.connect(base.replace(/^http/, 'ws') + '/announce');
    const offers = [{ offer_id: 'intruder-offer-0001', offer: { type: 'offer', sdp: 'v=0 intruder' } }];
    intruder.announce(manifestInfoHash, { offers, numwant: 5 });
    intruder.announce(manifestInfoHash, { offers, numwant: 5, pf_session: publicSession.session_id, pf_proof: publicSession.announce_proof });
    intruder.announce(manifestInfoHash, { offers, numwant: 5, pf_session: publicSession.session_id, pf_proof: 'A'.repeat(43) });
    // An answer straight at the seeder's peer_id, as if it had an offer from it.
    intruder.send({
      action: 'announce',
      info_hash: hexToBinaryString(manifestInfoHash),
      peer_id: intruder.peerId,
      to_peer_id: hexToBinaryString(seederClient.peerIdHex),
      offer_id: 'seeder-offer-guess0',
      answer: { type: 'answer', sdp: 'v=0 intruder' },
    });
    const failures: Record<string, unknown>[] = [];
    while (failures.length < 4) failures.push(await intruder.next(isFailure, 10_000, intruder.frames.indexOf(failures.at(-1)!) + 1));
    expect(failures.every((frame) => frame.pf_code === 'PF_ERR_FORBIDDEN')).toBe(true);

    // A granted leecher joins the same swarm and gets the file; the intruder still sees nothing.
    const leecher = createClient({ ...options, seedAfterDoneMs: 0 }).download({ serverUrl: base, fileId: privateId, grant: await grantFor('carol') }, new FileChunkStore(join(dir, 'carol.bin')));
    downloads.push(leecher);
    const done = await new Promise<{ sha256: string; fromPeersBytes: number }>((resolve, reject) => {
      leecher.on('done', ({ sha256: digest, progress }) => resolve({ sha256: digest, fromPeersBytes: progress.fromPeersBytes }));
      leecher.on('error', reject);
      void leecher.start();
    });
    expect(done.sha256).toBe(sha256(privateBytes));
    expect(sha256(await readFile(join(dir, 'carol.bin')))).toBe(sha256(privateBytes));
    console.log(`private swarm: granted leecher got ${(done.fromPeersBytes / MiB).toFixed(1)} MiB from the seeder; intruder frames: ${intruder.frames.length}`);
    // HTTP is held to 256 KiB/s here, so the admitted peer takes part of the file from the seeder.
    expect(done.fromPeersBytes).toBeGreaterThan(0);
    expect(intruder.frames.filter(isOffer)).toEqual([]);
    expect(intruder.frames.filter(isAnnounceResponse)).toEqual([]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/reason="private_swarm"\} 4/);
    await intruder.close();
  }, 120_000);
});
