import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createDownloadResponseCodec, sessionStateCodec, type CreateDownloadResponse } from '../../protocol/index.ts';
import { createStore, type Store } from '../../tracker/index.ts';
import { iceServersFor, iceSettingsErrors, turnCredential, type IceSettings } from '../../tracker/ice-servers.ts';
import { captureLogger, fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { TestPeer, eventually, isAnnounceResponse } from './fixtures/ws-client.ts';

const SECRET = 'lab-secret-0123456789';
const settings = (over: Partial<IceSettings> = {}): IceSettings => ({ stunUrls: [], turnUrls: [], turnSecret: undefined, turnTtlSeconds: 3600, ...over });

describe('ICE servers for a session (TURN REST API, as coturn use-auth-secret checks it)', () => {
  it('computes the credential as base64(HMAC-SHA1(secret, username))', () => {
    // From `printf %s 1700000000:sess1234567890abcd | openssl dgst -sha1 -hmac lab-secret-0123456789 -binary | base64`.
    expect(turnCredential(SECRET, '1700000000:sess1234567890abcd')).toBe('WHn/C6euHziyjbfKZf3KeAR63JM=');
  });

  it('names the session, expires after the TTL and never after the session', () => {
    const now = 1_700_000_000_000;
    const turn = settings({ stunUrls: ['stun:10.99.0.10:3478'], turnUrls: ['turn:10.99.0.10:3478?transport=udp'], turnSecret: SECRET, turnTtlSeconds: 600 });
    const servers = iceServersFor(turn, 'sess1234567890abcd', now, now + 7 * 86_400_000)!;
    expect(servers[0]).toEqual({ urls: ['stun:10.99.0.10:3478'] });
    expect(servers[1]!.username).toBe(`${now / 1000 + 600}:sess1234567890abcd`);
    expect(servers[1]!.credential).toBe(turnCredential(SECRET, servers[1]!.username!));
    const short = iceServersFor(turn, 'sess1234567890abcd', now, now + 60_000)!;
    expect(short[1]!.username).toBe(`${now / 1000 + 60}:sess1234567890abcd`);
  });

  it('hands out nothing when nothing is configured, and TURN never without its secret', () => {
    expect(iceServersFor(settings(), 's', 0, 1)).toBeUndefined();
    expect(iceSettingsErrors(settings({ turnUrls: ['turn:example.net'] }))).toEqual([expect.stringContaining('PEERFILL_TURN_SECRET')]);
    expect(iceSettingsErrors(settings({ stunUrls: ['http://example.net'] }))).toEqual([expect.stringContaining('stun:HOST')]);
    expect(iceSettingsErrors(settings({ turnUrls: ['turn:example.net'], turnSecret: 'short' }))).toEqual([expect.stringContaining('at least 16')]);
    expect(iceSettingsErrors(settings({ stunUrls: ['stun:a.example:3478'], turnUrls: ['turns:b.example:5349?transport=tcp'], turnSecret: SECRET }))).toEqual([]);
  });
});

let fixture: Fixture;
let running: RunningTracker | undefined;
let store: Store | undefined;
beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterEach(async () => {
  await running?.close();
  await store?.close();
  running = undefined;
  store = undefined;
});

async function start(ice: Partial<IceSettings> | undefined, logger = pino({ level: 'silent' })): Promise<RunningTracker> {
  store = await createStore({ kind: 'memory' }, { logger });
  running = await startTracker({ store, directory: fixture.directory, config: ice ? { ice } : {}, logger });
  return running;
}

async function create(): Promise<CreateDownloadResponse> {
  const response = await fetch(`${running!.baseUrl}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: 'alpha' }) });
  expect(response.status).toBe(201);
  return createDownloadResponseCodec.parse(await response.json());
}

describe('ICE servers in session answers', () => {
  it('are absent when the publisher configured none (clients keep their defaults)', async () => {
    await start(undefined);
    expect((await create()).ice_servers).toBeUndefined();
  });

  it('come with POST /downloads and every PATCH and GET, TURN credentials fresh each time, and never in the logs', async () => {
    const { logger, lines } = captureLogger();
    await start({ stunUrls: ['stun:10.99.0.10:3478'], turnUrls: ['turn:10.99.0.10:3478'], turnSecret: SECRET, turnTtlSeconds: 600 }, logger);
    const created = await create();
    expect(created.ice_servers?.map((server) => server.urls)).toEqual([['stun:10.99.0.10:3478'], ['turn:10.99.0.10:3478']]);
    const turn = created.ice_servers![1]!;
    expect(turn.username).toMatch(new RegExp(`^\\d+:${created.session_id}$`));
    expect(turn.credential).toBe(turnCredential(SECRET, turn.username!));
    const expiry = Number(turn.username!.split(':')[0]);
    expect(expiry * 1000).toBeGreaterThan(Date.now() + 590_000);
    expect(expiry * 1000).toBeLessThanOrEqual(Date.now() + 600_000);

    await new Promise((resolve) => setTimeout(resolve, 1100));
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${created.session_token}` };
    const patched = sessionStateCodec.parse(await (await fetch(`${running!.baseUrl}/downloads/${created.session_id}`, { method: 'PATCH', headers, body: JSON.stringify({ status: 'resumed' }) })).json());
    const got = sessionStateCodec.parse(await (await fetch(`${running!.baseUrl}/downloads/${created.session_id}`, { headers })).json());
    for (const answer of [patched, got]) {
      const fresh = answer.ice_servers![1]!;
      expect(Number(fresh.username!.split(':')[0])).toBeGreaterThan(expiry);
      expect(fresh.credential).toBe(turnCredential(SECRET, fresh.username!));
    }
    const logged = JSON.stringify(lines);
    expect(logged).toContain('download session created');
    expect(logged).not.toContain(turn.credential);
    expect(logged).not.toContain(SECRET);
  });

  it('counts peer connections by type per file in /metrics, from announces', async () => {
    await start(undefined);
    const alpha = fixture.files[0]!;
    const peer = await TestPeer.connect(running!.wsUrl);
    peer.announce(alpha.info_hash, { pf_connections: { host: 1, srflx: 2, relay: 3 } });
    await peer.next(isAnnounceResponse);
    const metric = (type: string) => new RegExp(`peerfill_tracker_peer_connections\\{file_id="alpha",info_hash="${alpha.info_hash}",type="${type}"\\} (\\d+)`);
    let text = '';
    await eventually(async () => {
      text = await (await fetch(`${running!.baseUrl}/metrics`)).text();
      return metric('relay').test(text);
    });
    expect(metric('host').exec(text)?.[1]).toBe('1');
    expect(metric('srflx').exec(text)?.[1]).toBe('2');
    expect(metric('relay').exec(text)?.[1]).toBe('3');
    peer.announce(alpha.info_hash, { pf_connections: { host: 9, srflx: -1, relay: 0 } });
    await peer.next((frame) => typeof frame['failure reason'] === 'string');
    await peer.close();
  });
});
