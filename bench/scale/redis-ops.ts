/**
 * Redis operations per tracker action, and one Redis core's capacity for them: the two
 * figures docs/scale.md sizes the Redis Cluster from.
 *
 *   node --import tsx bench/scale/redis-ops.ts [--peers 400] [--updates 4] [--sessions 200]
 *
 * Starts Debian's redis-server on a free loopback port, a real tracker over it, drives real
 * WebSocket announces and REST session calls, and reads Redis's own command counters
 * (INFO commandstats) before and after each phase. Then runs redis-benchmark against the
 * same server for the command mix measured. Bounded in count; stops by itself.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { hexToBinaryString } from '../../protocol/index.ts';
import { createStore } from '../../tracker/index.ts';
import { buildManifest, FixtureDirectory } from '../../test/tracker/fixtures/files.ts';
import { startTracker } from '../../test/tracker/fixtures/harness.ts';
import { RedisServer } from '../../test/tracker/fixtures/redis-server.ts';

const { values } = parseArgs({ options: { peers: { type: 'string', default: '400' }, updates: { type: 'string', default: '4' }, sessions: { type: 'string', default: '200' }, swarms: { type: 'string', default: '20' } } });
const PEERS = Number(values.peers);
const UPDATES = Number(values.updates);
const SESSIONS = Number(values.sessions);
const SWARMS = Number(values.swarms);

type Stats = Map<string, number>;

async function commandStats(redis: Redis): Promise<Stats> {
  const info = await redis.info('commandstats');
  const stats: Stats = new Map();
  for (const line of info.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match) stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

function delta(before: Stats, after: Stats): Stats {
  const out: Stats = new Map();
  for (const [name, calls] of after) {
    const diff = calls - (before.get(name) ?? 0);
    // The bench's own INFO calls are not tracker work.
    if (diff > 0 && name !== 'info') out.set(name, diff);
  }
  return out;
}

function total(stats: Stats): number {
  let sum = 0;
  for (const calls of stats.values()) sum += calls;
  return sum;
}

function describe(stats: Stats, per: number): string {
  return [...stats.entries()].sort((a, b) => b[1] - a[1]).map(([name, calls]) => `${name} ${(calls / per).toFixed(2)}`).join(', ');
}

/** redis-benchmark --csv rows: ["TEST", "requests/s", ...]; the header is skipped. */
function csvRows(csv: string): [string, string][] {
  const rows: [string, string][] = [];
  for (const line of csv.split('\n')) {
    const match = /^"(.*?)","([0-9.]+)"/.exec(line.trim());
    if (match) rows.push([match[1]!.split(' ')[0]!, Number(match[2]).toFixed(0)]);
  }
  return rows;
}

function randomPeerId(index: number): string {
  return `-PF0001-${String(index).padStart(12, '0')}`;
}

async function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

/** Send an announce and wait for its reply (the frame with `interval`). */
async function announce(socket: WebSocket, body: Record<string, unknown>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('announce timed out')), 10_000);
    const onMessage = (data: Buffer) => {
      const text = data.toString('utf8');
      if (text.includes('"interval"') || text.includes('failure reason')) {
        socket.off('message', onMessage);
        clearTimeout(timer);
        if (text.includes('failure reason')) reject(new Error(text));
        else resolve();
      }
    };
    socket.on('message', onMessage);
    socket.send(JSON.stringify(body));
  });
}

async function main(): Promise<void> {
  const redisServer = await RedisServer.start();
  const logger = pino({ level: 'silent' });
  const store = await createStore({ kind: 'redis', url: redisServer.url }, { logger });
  const directory = new FixtureDirectory();
  const manifests = [];
  for (let i = 0; i < SWARMS; i++) {
    const manifest = await buildManifest(`file${i}`, `file${i}.bin`, 4 * 1024 * 1024, i + 1);
    directory.add(manifest);
    manifests.push(manifest);
  }
  const tracker = await startTracker({ store, directory, config: { announceIntervalSeconds: 120, maxMessagesPerSecond: 1000, messageBurst: 1000, maxConnectionsPerAddress: 1_000_000, maxRelayedOffersPerAddressPerSecond: 1e9, relayedOfferBurstPerAddress: 1e9, sessionCreatesPerAddressPerSecond: 1e9, sessionCreateBurstPerAddress: 1e9 } });
  const redis = new Redis(redisServer.url);
  const sockets: WebSocket[] = [];
  try {
    // Phase 1: every peer joins (event started, one offer relayed to a random peer).
    let before = await commandStats(redis);
    for (let i = 0; i < PEERS; i++) {
      const socket = await openSocket(tracker.wsUrl);
      sockets.push(socket);
      const manifest = manifests[i % SWARMS]!;
      await announce(socket, {
        action: 'announce',
        info_hash: hexToBinaryString(manifest.info_hash),
        peer_id: randomPeerId(i),
        event: 'started',
        numwant: 1,
        uploaded: 0,
        downloaded: 0,
        left: manifest.size,
        offers: [{ offer_id: `o${i}`, offer: { type: 'offer', sdp: 'v=0 bench' } }],
      });
    }
    const started = delta(before, await commandStats(redis));

    // Phase 2: periodic updates (no offers), as every client sends once per interval.
    before = await commandStats(redis);
    for (let round = 0; round < UPDATES; round++) {
      for (let i = 0; i < PEERS; i++) {
        const manifest = manifests[i % SWARMS]!;
        await announce(sockets[i]!, { action: 'announce', info_hash: hexToBinaryString(manifest.info_hash), peer_id: randomPeerId(i), event: 'update', numwant: 0, uploaded: round, downloaded: round, left: manifest.size - round });
      }
    }
    const updates = delta(before, await commandStats(redis));

    // Phase 3: sessions: create, then PATCH progress several times.
    before = await commandStats(redis);
    const sessions: { id: string; token: string; proof: string }[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const response = await fetch(`${tracker.baseUrl}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: manifests[i % SWARMS]!.file_id }) });
      if (response.status !== 201) throw new Error(`POST /downloads answered ${response.status}`);
      const body = (await response.json()) as { session_id: string; session_token: string; announce_proof: string };
      sessions.push({ id: body.session_id, token: body.session_token, proof: body.announce_proof });
    }
    const created = delta(before, await commandStats(redis));
    before = await commandStats(redis);
    for (let round = 1; round <= UPDATES; round++) {
      for (const session of sessions) {
        const response = await fetch(`${tracker.baseUrl}/downloads/${session.id}`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${session.token}` },
          body: JSON.stringify({ bytes_confirmed: round * 262144, bytes_from_http: round * 262144 }),
        });
        if (response.status !== 200) throw new Error(`PATCH answered ${response.status}`);
      }
    }
    const patched = delta(before, await commandStats(redis));

    // Phase 4: update announces that carry the session's progress (pf_* fields).
    const carriers = Math.min(SESSIONS, PEERS);
    before = await commandStats(redis);
    for (let i = 0; i < carriers; i++) {
      const manifest = manifests[i % SWARMS]!;
      await announce(sockets[i]!, {
        action: 'announce', info_hash: hexToBinaryString(manifest.info_hash), peer_id: randomPeerId(i), event: 'update', numwant: 0,
        uploaded: 0, downloaded: 524288, left: manifest.size - 524288,
        pf_session: sessions[i]!.id, pf_proof: sessions[i]!.proof, pf_bytes_confirmed: (UPDATES + 1) * 262144, pf_from_peers: 262144, pf_from_http: UPDATES * 262144,
      });
    }
    // Session writes from announces are applied after the reply: let them land.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const carried = delta(before, await commandStats(redis));

    // Capacity of one Redis core for the dominant commands, measured here.
    const dominant = [...new Set([...started.keys(), ...updates.keys(), ...patched.keys()])].filter((name) => ['evalsha', 'eval', 'get', 'set', 'zadd', 'hset', 'publish', 'exec', 'multi', 'watch', 'expire', 'pexpire'].includes(name));
    const bench = execFileSync('redis-benchmark', ['-p', String(redisServer.port), '-n', '200000', '-c', '50', '--csv', '-t', 'get,set,zadd,hset'], { encoding: 'utf8', timeout: 120_000 });
    const evalBench = execFileSync('redis-benchmark', ['-p', String(redisServer.port), '-n', '100000', '-c', '50', '-r', '100000', '--csv', 'EVAL', "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]); redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]); return redis.call('ZCARD', KEYS[1])", '2', 'pf:{bench}:seen', 'pf:{bench}:peers', '__rand_int__', 'peer__rand_int__'], { encoding: 'utf8', timeout: 120_000 });

    const lines = [
      `redis ops per tracker action (bench/scale/redis-ops.ts; ${PEERS} peers in ${SWARMS} swarms, ${UPDATES} update rounds, ${SESSIONS} sessions)`,
      `load average: ${loadavg().map((value) => value.toFixed(2)).join(' ')}; redis-server ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2]}`,
      '',
      `announce started + 1 offer   ${(total(started) / PEERS).toFixed(2)} commands   (${describe(started, PEERS)})`,
      `announce update              ${(total(updates) / (PEERS * UPDATES)).toFixed(2)} commands   (${describe(updates, PEERS * UPDATES)})`,
      `announce update + pf_session ${(total(carried) / carriers).toFixed(2)} commands   (${describe(carried, carriers)})`,
      `POST /downloads              ${(total(created) / SESSIONS).toFixed(2)} commands   (${describe(created, SESSIONS)})`,
      `PATCH /downloads/:id         ${(total(patched) / (SESSIONS * UPDATES)).toFixed(2)} commands   (${describe(patched, SESSIONS * UPDATES)})`,
      '',
      `one redis core, redis-benchmark -c 50 (commands the tracker uses: ${dominant.join(', ') || 'n/a'}):`,
      ...csvRows(bench).map(([name, rps]) => `  ${name.padEnd(8)} ${rps} requests/s`),
      ...csvRows(evalBench).map(([, rps]) => `  EVAL     ${rps} requests/s (ZADD+HSET+ZCARD script, like the tracker's Lua upsert)`),
    ];
    console.log(lines.join('\n'));
  } finally {
    for (const socket of sockets) socket.terminate();
    await tracker.close();
    await store.close();
    redis.disconnect();
    await redisServer.stop();
  }
}

await main();
