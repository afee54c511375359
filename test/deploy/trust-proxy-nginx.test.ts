import { request as httpRequest } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createStore, parseTrustProxy, type Store, type TrackerConfig } from '../../tracker/index.ts';
import { freePort } from '../support/net.ts';
import { fixtureFiles, startTracker, type Fixture, type RunningTracker } from '../tracker/fixtures/harness.ts';
import { startBalancer, type RunningBalancer } from './fixtures/nginx-trackers.ts';

/**
 * A tracker behind Debian's nginx with deploy/nginx/peerfill-trackers.conf: clients reach it
 * only through nginx (from 127.0.0.2 and 127.0.0.3), so every socket the tracker sees comes
 * from nginx's 127.0.0.1. Only the X-Forwarded-For that nginx adds tells them apart.
 */
let fixture: Fixture;
let store: Store | undefined;
let running: RunningTracker | undefined;
let balancer: RunningBalancer | undefined;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await balancer?.stop();
  await running?.close();
  await store?.close();
  balancer = undefined;
  running = undefined;
  store = undefined;
});

async function start(config: Partial<TrackerConfig>): Promise<string> {
  const { pino } = await import('pino');
  store = await createStore({ kind: 'memory' }, { logger: pino({ level: 'silent' }) });
  running = await startTracker({ store, directory: fixture.directory, config });
  balancer = await startBalancer({ port: await freePort(), originUrl: running.baseUrl, trackerUrls: [running.baseUrl], connectTimeout: '1s' });
  return balancer.url;
}

/** Upgrade /announce through nginx from `localAddress`, with a forged X-Forwarded-For; 101 or the refusal's status. */
function upgrade(base: string, localAddress: string, forgedFor: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/announce`, { localAddress, headers: { 'x-forwarded-for': forgedFor } });
    sockets.push(ws);
    ws.once('open', () => resolve(101));
    ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    ws.once('error', reject);
  });
}

function createSession(base: string, localAddress: string, forgedFor: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${base}/downloads`, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', 'x-forwarded-for': forgedFor } }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
    });
    request.once('error', reject);
    request.end(JSON.stringify({ file_id: fixture.files[0]!.file_id }));
  });
}

const trustLoopbackProxy = (() => {
  const parsed = parseTrustProxy('127.0.0.1');
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.trust;
})();

describe('per-address limits through nginx', () => {
  it('with nginx trusted, each client behind it has its own caps, whatever X-Forwarded-For it forges', async () => {
    const base = await start({ maxConnectionsPerAddress: 2, sessionCreatesPerAddressPerSecond: 1, sessionCreateBurstPerAddress: 2, trustProxy: trustLoopbackProxy });
    // nginx appends the address it saw, so the forged entries stay left of a hop nobody trusts.
    expect([await upgrade(base, '127.0.0.2', '198.51.100.1'), await upgrade(base, '127.0.0.2', '198.51.100.2'), await upgrade(base, '127.0.0.2', '198.51.100.3')]).toEqual([101, 101, 429]);
    expect(await upgrade(base, '127.0.0.3', '198.51.100.1')).toBe(101);
    expect([await createSession(base, '127.0.0.2', '198.51.100.4'), await createSession(base, '127.0.0.2', '198.51.100.5'), await createSession(base, '127.0.0.2', '198.51.100.6')]).toEqual([201, 201, 429]);
    expect(await createSession(base, '127.0.0.3', '198.51.100.4')).toBe(201);
  });

  it('without --trust-proxy, every client behind nginx is nginx: one shared cap', async () => {
    const base = await start({ maxConnectionsPerAddress: 2, sessionCreatesPerAddressPerSecond: 1, sessionCreateBurstPerAddress: 2 });
    expect([await upgrade(base, '127.0.0.2', '198.51.100.1'), await upgrade(base, '127.0.0.3', '198.51.100.2'), await upgrade(base, '127.0.0.4', '198.51.100.3')]).toEqual([101, 101, 429]);
    expect([await createSession(base, '127.0.0.2', '198.51.100.4'), await createSession(base, '127.0.0.3', '198.51.100.5'), await createSession(base, '127.0.0.4', '198.51.100.6')]).toEqual([201, 201, 429]);
  });
});
