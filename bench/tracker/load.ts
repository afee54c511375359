// Load generator, in its own process: `node --import tsx load.ts <json options>`.
// Mode "throughput": every peer announces (with one offer) again as soon as it is answered,
// for a fixed time; prints answered announces/s and reply-latency percentiles.
// Mode "hold": opens N peers, each announces once; prints HELD, waits for stdin to close.
import WebSocket from 'ws';
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';

export const LoadOptionsSchema = Type.Object({
  mode: Type.Union([Type.Literal('throughput'), Type.Literal('hold')]),
  url: Type.String(),
  peers: Type.Integer({ minimum: 1, maximum: 100_000 }),
  swarms: Type.Integer({ minimum: 1 }),
  durationMs: Type.Integer({ minimum: 100, maximum: 120_000 }),
  sourceAddresses: Type.Integer({ minimum: 1, maximum: 250 }),
});

const parsed = parseJson(process.argv[2] ?? '');
const options = createCodec(LoadOptionsSchema).parse(parsed.ok ? parsed.value : undefined);
const binary = (bytes: Buffer) => bytes.toString('latin1');
const swarms = Array.from({ length: options.swarms }, () => binary(randomBytes(20)));
const sdp = { type: 'offer', sdp: `v=0\r\no=- ${'1'.repeat(19)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:${'p'.repeat(24)}\r\na=fingerprint:sha-256 ${'AB:'.repeat(31)}AB\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n` };

interface Peer {
  ws: WebSocket;
  message: string;
  sentAtNs: bigint;
  running: boolean;
}

let answered = 0;
let measuring = false;
const latenciesUs: number[] = [];
let failures = 0;

function announceFrame(infoHash: string, peerId: string, event: string, withOffer: boolean): string {
  const frame: Record<string, unknown> = { action: 'announce', info_hash: infoHash, peer_id: peerId, event, uploaded: 0, downloaded: 0, left: 1000, numwant: withOffer ? 1 : 0 };
  if (withOffer) frame.offers = [{ offer_id: binary(randomBytes(20)), offer: sdp }];
  return JSON.stringify(frame);
}

async function open(index: number): Promise<Peer> {
  const localAddress = `127.0.0.${2 + (index % options.sourceAddresses)}`;
  const ws = new WebSocket(options.url, { localAddress, perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const infoHash = swarms[index % swarms.length]!;
  const peerId = binary(randomBytes(20));
  const peer: Peer = { ws, message: announceFrame(infoHash, peerId, 'update', options.mode === 'throughput'), sentAtNs: 0n, running: true };
  ws.on('error', () => failures++);
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    // Relayed offers arrive too; only the announce reply (it has "interval") counts.
    if (!text.includes('"interval"')) {
      if (text.includes('failure reason')) failures++;
      return;
    }
    if (measuring) {
      answered++;
      latenciesUs.push(Number((process.hrtime.bigint() - peer.sentAtNs) / 1000n));
    }
    if (options.mode === 'throughput' && peer.running) send(peer);
  });
  return peer;
}

function send(peer: Peer): void {
  peer.sentAtNs = process.hrtime.bigint();
  peer.ws.send(peer.message);
}

async function openAll(): Promise<Peer[]> {
  const peers: Peer[] = [];
  const concurrency = 256;
  for (let start = 0; start < options.peers; start += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, options.peers - start) }, (_, i) => open(start + i)));
    peers.push(...batch);
  }
  return peers;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const peers = await openAll();
if (options.mode === 'hold') {
  // Each peer joins its swarm once.
  measuring = true;
  for (const peer of peers) {
    peer.message = peer.message.replace('"event":"update"', '"event":"started"');
    send(peer);
  }
  const deadline = Date.now() + 120_000;
  while (answered < peers.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  process.stdout.write(`HELD ${JSON.stringify({ peers: peers.length, answered, failures })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  for (const peer of peers) send(peer);
  // Warm up, then measure a fixed window.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  measuring = true;
  const startedNs = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, options.durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
  for (const peer of peers) peer.running = false;
  latenciesUs.sort((a, b) => a - b);
  process.stdout.write(
    `RESULT ${JSON.stringify({ peers: peers.length, answered, announcesPerSecond: answered / seconds, p50Ms: percentile(latenciesUs, 50) / 1000, p99Ms: percentile(latenciesUs, 99) / 1000, failures })}\n`,
  );
  for (const peer of peers) peer.ws.terminate();
  process.exit(0);
}
