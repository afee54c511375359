// Peers behind NATs, with the publisher's STUN/TURN (coturn) in the lab: real `peerfill serve`,
// `seed` and `get` processes in hosts behind the lab's NAT routers, and Debian's coturn on the
// public host beside the origin.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { turnCredential } from '../../tracker/ice-servers.ts';
import { hasCoturn, startCoturn, type Coturn } from './coturn.ts';
import { createLab, labSupport, type HostSpec, type Lab } from './lab.ts';
import { runGet, serveFile, startSeed, stop, type CliEvent, type GetResult } from './peerfill.ts';

const MiB = 1024 * 1024;
const SECRET = 'lab-turn-secret-0123456789';
const support = labSupport();
const canRun = support.isSupported && support.hasNat && hasCoturn();
if (!support.isSupported) console.log(`test/lab: NAT tests skipped: ${support.reason}`);
else if (!support.hasNat) console.log('test/lab: NAT tests skipped: iptables cannot NAT in a namespace here (Debian package iptables)');
else if (!hasCoturn()) console.log('test/lab: NAT tests skipped: coturn is not installed (Debian package coturn)');

let dir: string;
let lab: Lab | undefined;
let coturn: Coturn | undefined;
let file: { path: string; sha256: string };
let nextPort = 8080;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-lab-nat-'));
  await mkdir(join(dir, 'files'));
  const bytes = randomBytes(16 * MiB);
  file = { path: join(dir, 'files', 'nat.bin'), sha256: createHash('sha256').update(bytes).digest('hex') };
  await writeFile(file.path, bytes);
});
afterEach(async () => {
  coturn?.close();
  coturn = undefined;
  await lab?.close();
  lab = undefined;
  await rm(dir, { recursive: true, force: true });
});

/**
 * The public host (origin, tracker) is slower up than the seeder, so a connected seeder carries a
 * visible share. HTTP alone takes long enough (16 MiB at 8 Mbit: about 17 s) that a peer which
 * connects late on a loaded machine (non-trickle ICE takes about 5 s here even when idle) still
 * carries bytes. coturn has a host of its own, as a deployment's TURN server would, so relayed
 * bytes do not queue behind the origin's HTTP on one uplink.
 */
async function build(seederNat: HostSpec['nat'], leecherNat: HostSpec['nat']): Promise<Lab> {
  lab = await createLab([
    { name: 'pub', down: '1gbit', up: '8mbit' },
    { name: 'turn', down: '1gbit', up: '1gbit' },
    { name: 'seeder', down: '200mbit', up: '100mbit', nat: seederNat },
    { name: 'leecher', down: '200mbit', up: '20mbit', nat: leecherNat },
  ]);
  coturn = await startCoturn(lab.host('turn'), { secret: SECRET, port: 3478 });
  return lab;
}

/** serve (with these ICE flags and TURN secret), a seeder, and one get; the seeder's events are kept. */
async function swarm(lab: Lab, serveArgs: string[], secret: string | undefined, clientArgs: string[] = []): Promise<{ get: GetResult; seederEvents: CliEvent[]; children: ChildProcess[] }> {
  const port = nextPort++;
  const env = secret === undefined ? {} : { PEERFILL_TURN_SECRET: secret };
  const served = await serveFile(lab.host('pub'), 'nat.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data${port}`), port, extraArgs: serveArgs, env });
  const seederEvents: CliEvent[] = [];
  const seeder = await startSeed(lab.host('seeder'), file.path, served.serverUrl, clientArgs, seederEvents);
  const get = await runGet(lab.host('leecher'), served.fileUrl, join(dir, `out${port}.bin`), clientArgs, 120_000);
  return { get, seederEvents, children: [served.child, seeder] };
}

const fromPeers = (result: GetResult) => Number(result.done?.from_peers_bytes ?? Number.NaN);
async function expectExact(result: GetResult, path: string): Promise<void> {
  expect(result.exitCode, result.stderr).toBe(0);
  expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(file.sha256);
}
function log(label: string, result: GetResult): void {
  console.log(
    `test/lab NAT ${label}: exit ${result.exitCode}, ${(result.wallMs / 1000).toFixed(1)} s, peers ${(fromPeers(result) / MiB).toFixed(1)} MiB, http ${(Number(result.done?.from_http_bytes) / MiB).toFixed(1)} MiB, connections ${JSON.stringify(result.connectionTypes)} at ${JSON.stringify(result.peerAtMs.map((ms) => Math.round(ms)))} ms, warnings ${JSON.stringify(result.warnings.filter((w) => /TURN|relay/.test(w)))}`,
  );
}

describe.skipIf(!canRun)('peers behind NATs', () => {
  it('two peers behind endpoint-independent NATs connect through STUN (srflx), and the leecher gets bytes from the seeder', async () => {
    const lab = await build('eim', 'eim');
    const { get } = await swarm(lab, ['--stun', coturn!.stunUrl], undefined);
    log('eim+eim, STUN', get);
    await expectExact(get, join(dir, `out${nextPort - 1}.bin`));
    expect(get.connectionTypes).toContain('srflx');
    expect(get.connectionTypes).not.toContain('relay');
    expect(fromPeers(get)).toBeGreaterThan(0);
  }, 180_000);

  it('two peers behind symmetric NATs: with STUN only they do not connect and HTTP completes the exact file; with TURN they connect through the relay', async () => {
    const lab = await build('symmetric', 'symmetric');
    const stunOnly = await swarm(lab, ['--stun', coturn!.stunUrl], undefined);
    log('symmetric+symmetric, STUN only', stunOnly.get);
    await expectExact(stunOnly.get, join(dir, `out${nextPort - 1}.bin`));
    expect(stunOnly.get.connectionTypes).toEqual([]);
    expect(fromPeers(stunOnly.get)).toBe(0);
    for (const child of stunOnly.children) await stop(child);

    const withTurn = await swarm(lab, ['--stun', coturn!.stunUrl, '--turn', coturn!.turnUrl], SECRET);
    log('symmetric+symmetric, TURN', withTurn.get);
    await expectExact(withTurn.get, join(dir, `out${nextPort - 1}.bin`));
    expect(withTurn.get.connectionTypes).toContain('relay');
    expect(fromPeers(withTurn.get)).toBeGreaterThan(0);
    expect(withTurn.seederEvents.some((event) => event.event === 'peer' && event.connection_type === 'relay')).toBe(true);
    // coturn itself saw the allocations and the relayed data.
    expect(coturn!.log()).toMatch(/ALLOCATE processed, success/);
  }, 240_000);

  it('wrong or expired TURN credentials: no relay, no crash, HTTP fills, and the client says why', async () => {
    const lab = await build('symmetric', 'symmetric');
    const wrong = await swarm(lab, ['--stun', coturn!.stunUrl, '--turn', coturn!.turnUrl], 'not-the-coturn-secret-42');
    log('symmetric+symmetric, wrong TURN secret', wrong.get);
    await expectExact(wrong.get, join(dir, `out${nextPort - 1}.bin`));
    expect(wrong.get.connectionTypes).toEqual([]);
    expect(wrong.get.warnings.join('\n')).toMatch(/TURN server gave no relay \(wrong or expired credentials/);
    expect(wrong.get.lastProgress?.relay_problem).toMatch(/TURN server gave no relay/);
    for (const child of wrong.children) await stop(child);

    // Credentials that coturn would have taken an hour ago, given explicitly (an explicit list wins over the server's).
    const username = `${Math.floor(Date.now() / 1000) - 3600}:expired-session`;
    const expired = JSON.stringify([{ urls: [coturn!.turnUrl], username, credential: turnCredential(SECRET, username) }]);
    const late = await swarm(lab, ['--stun', coturn!.stunUrl, '--turn', coturn!.turnUrl], SECRET, ['--ice-servers', expired]);
    log('symmetric+symmetric, expired TURN credentials', late.get);
    await expectExact(late.get, join(dir, `out${nextPort - 1}.bin`));
    expect(late.get.connectionTypes).toEqual([]);
    expect(late.get.warnings.join('\n')).toMatch(/TURN credentials expired at/);
    expect(coturn!.log()).toMatch(/401|Unauthorized|wrong|expired/i);
  }, 240_000);
});
