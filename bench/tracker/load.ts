// Load generator, one of several processes: `node --import tsx load.ts <json options>`.
// Opens its share of the peers and prints READY, then obeys commands on stdin, one a line:
//   start   - throughput: every peer announces (with one offer) again as soon as it is answered;
//             hold: every peer announces once ("started"), then HELD is printed
//   measure - start counting answered announces and reply latencies
//   loop    - hold mode, after HELD: every peer switches to the throughput loop (update
//             announces with one offer, again as soon as answered), so held peers are the load
//   stop    - print RESULT (throughput and hold) and exit
// stdin closing also ends the process.
//
// client "raw" (default) speaks RFC 6455 over a plain net.Socket: each peer's announce is one
// pre-built, masked (all-zero mask key) frame written as is, and replies are recognised
// without decoding JSON. That keeps the generator's cost per announce far below a server's,
// so the bench measures the server. client "ws" uses the `ws` package, as a real client would
// (several times more CPU per announce; it saturated its core before either server did).
import WebSocket from 'ws';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';

export const LoadOptionsSchema = Type.Object({
  mode: Type.Union([Type.Literal('throughput'), Type.Literal('hold')]),
  client: Type.Union([Type.Literal('raw'), Type.Literal('ws')]),
  url: Type.String(),
  peers: Type.Integer({ minimum: 1, maximum: 100_000 }),
  /** This generator's first peer index (peers of all generators are numbered 0..total-1). */
  firstPeer: Type.Integer({ minimum: 0 }),
  /** The swarms (hex info_hashes), the same list in every generator. */
  swarms: Type.Array(Type.String({ pattern: '^[0-9a-f]{40}$' }), { minItems: 1 }),
  sourceAddresses: Type.Integer({ minimum: 1, maximum: 250 }),
});

const parsed = parseJson(process.argv[2] ?? '');
const options = createCodec(LoadOptionsSchema).parse(parsed.ok ? parsed.value : undefined);
const target = new URL(options.url);
const binary = (bytes: Buffer) => bytes.toString('latin1');
const swarms = options.swarms.map((hex) => binary(Buffer.from(hex, 'hex')));
const sdp = { type: 'offer', sdp: `v=0\r\no=- ${'1'.repeat(19)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:${'p'.repeat(24)}\r\na=fingerprint:sha-256 ${'AB:'.repeat(31)}AB\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n` };

interface Peer {
  send(): void;
  /** From now on send() sends this frame (hold mode's `loop`). */
  switchTo(message: string): void;
  sentAtNs: bigint;
  running: boolean;
  close(): void;
}

let answered = 0;
let measuring = false;
let measureStartedNs = 0n;
let started = false;
/** Peers announce again as soon as answered: throughput mode, or hold mode after `loop`. */
let looping = options.mode === 'throughput';
/** Reply latencies in 0.1 ms buckets: bucket -> count (merged by the runner). */
const latencyBuckets = new Map<number, number>();
let failures = 0;

function announceFrame(infoHash: string, peerId: string, event: string, withOffer: boolean): string {
  const frame: Record<string, unknown> = { action: 'announce', info_hash: infoHash, peer_id: peerId, event, uploaded: 0, downloaded: 0, left: 1000, numwant: withOffer ? 1 : 0 };
  if (withOffer) frame.offers = [{ offer_id: binary(randomBytes(20)), offer: sdp }];
  return JSON.stringify(frame);
}

function onReply(peer: Peer): void {
  if (measuring) {
    answered++;
    const bucket = Number((process.hrtime.bigint() - peer.sentAtNs) / 100_000n);
    latencyBuckets.set(bucket, (latencyBuckets.get(bucket) ?? 0) + 1);
  }
  if (looping && peer.running) peer.send();
}

/** A client WebSocket frame (FIN, text) with an all-zero mask key, so the payload goes as is. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x81, 0x80 | length]) : length < 65_536 ? Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]) : undefined;
  if (!header) throw new Error('frame too large for this generator');
  return Buffer.concat([header, Buffer.alloc(4), payload]);
}

const INTERVAL = Buffer.from('"interval"');
const FAILURE = Buffer.from('failure reason');

function openRaw(localAddress: string, message: string): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: target.hostname, port: Number(target.port), localAddress, noDelay: true });
    let frame = maskedTextFrame(message);
    let buffer: Buffer = Buffer.alloc(0);
    let upgraded = false;
    const peer: Peer = {
      sentAtNs: 0n,
      running: true,
      send() {
        peer.sentAtNs = process.hrtime.bigint();
        socket.write(frame);
      },
      switchTo(next) {
        frame = maskedTextFrame(next);
      },
      close: () => socket.destroy(),
    };
    socket.on('error', (error) => (upgraded ? failures++ : reject(error)));
    // A server past its limits may accept and never answer the upgrade: give up on it.
    socket.setTimeout(60_000, () => {
      if (upgraded) return;
      reject(new Error('no upgrade reply within 60 s'));
      socket.destroy();
    });
    socket.on('connect', () => {
      socket.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buffer.subarray(0, 12).toString('latin1').endsWith(' 101')) {
          reject(new Error(`upgrade refused: ${buffer.subarray(0, end).toString('latin1').split('\r\n', 1)[0]}`));
          socket.destroy();
          return;
        }
        upgraded = true;
        socket.setTimeout(0);
        buffer = buffer.subarray(end + 4);
        resolve(peer);
      }
      // Server frames are never masked.
      let offset = 0;
      while (buffer.length - offset >= 2) {
        const opcode = buffer[offset]! & 0x0f;
        let length = buffer[offset + 1]! & 0x7f;
        let start = offset + 2;
        if (length === 126) {
          if (buffer.length - offset < 4) break;
          length = buffer.readUInt16BE(offset + 2);
          start = offset + 4;
        } else if (length === 127) {
          if (buffer.length - offset < 10) break;
          length = Number(buffer.readBigUInt64BE(offset + 2));
          start = offset + 10;
        }
        const end = start + length;
        if (end > buffer.length) break;
        offset = end;
        if (opcode === 0x8) {
          failures++;
          socket.destroy();
          return;
        }
        if (opcode !== 0x1) continue;
        // Relayed offers arrive too; only the announce reply (it has "interval") counts.
        const payload = buffer.subarray(start, end);
        if (payload.indexOf(INTERVAL) >= 0) onReply(peer);
        else if (payload.indexOf(FAILURE) >= 0) failures++;
      }
      buffer = offset === buffer.length ? Buffer.alloc(0) : buffer.subarray(offset);
    });
  });
}

async function openWs(localAddress: string, message: string): Promise<Peer> {
  const ws = new WebSocket(options.url, { localAddress, perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let current = message;
  const peer: Peer = {
    sentAtNs: 0n,
    running: true,
    send() {
      peer.sentAtNs = process.hrtime.bigint();
      ws.send(current);
    },
    switchTo(next) {
      current = next;
    },
    close: () => ws.terminate(),
  };
  ws.on('error', () => failures++);
  ws.on('message', (data: Buffer) => {
    const body = data.toString('utf8');
    if (body.includes('"interval"')) onReply(peer);
    else if (body.includes('failure reason')) failures++;
  });
  return peer;
}

/** Each peer's update announce with one offer, for the throughput loop (hold mode: after `loop`). */
const loopFrames: string[] = [];

function open(index: number): Promise<Peer> {
  const localAddress = `127.0.0.${2 + (index % options.sourceAddresses)}`;
  const infoHash = swarms[index % swarms.length]!;
  const peerId = binary(randomBytes(20));
  const message = announceFrame(infoHash, peerId, options.mode === 'hold' ? 'started' : 'update', options.mode === 'throughput');
  if (options.mode === 'hold') loopFrames.push(announceFrame(infoHash, peerId, 'update', true));
  return options.client === 'raw' ? openRaw(localAddress, message) : openWs(localAddress, message);
}

/** Sockets that could not be opened: counted, the first reason kept, the rest still tried. */
let openFailures = 0;
let firstOpenError: string | undefined;

async function openAll(): Promise<Peer[]> {
  const peers: Peer[] = [];
  const concurrency = 256;
  for (let start = 0; start < options.peers; start += concurrency) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(concurrency, options.peers - start) }, (_, i) =>
        open(options.firstPeer + start + i).then(
          (peer) => ({ peer, index: start + i }),
          (error: unknown) => {
            openFailures++;
            firstOpenError ??= error instanceof Error ? error.message : String(error);
            return undefined;
          },
        ),
      ),
    );
    for (const opened of batch) {
      if (!opened) continue;
      peers.push(opened.peer);
      if (options.mode === 'hold') keptFrames.push(loopFrames[opened.index]!);
    }
  }
  return peers;
}

/** loopFrames of the peers that opened, in the order of `peers`. */
const keptFrames: string[] = [];
const peers = await openAll();
process.stdout.write(`READY ${JSON.stringify({ opened: peers.length, failed: openFailures, firstError: firstOpenError ?? null })}\n`);
const lines = createInterface({ input: process.stdin });
lines.on('close', () => process.exit(0));
lines.on('line', (command) => {
  if (command === 'start' && !started) {
    started = true;
    if (options.mode === 'hold') {
      measuring = true;
      for (const peer of peers) peer.send();
      void waitForHold();
    } else {
      for (const peer of peers) peer.send();
    }
  } else if (command === 'loop' && options.mode === 'hold' && started && !looping) {
    looping = true;
    peers.forEach((peer, index) => peer.switchTo(keptFrames[index]!));
    for (const peer of peers) peer.send();
  } else if (command === 'measure') {
    answered = 0;
    latencyBuckets.clear();
    measuring = true;
    measureStartedNs = process.hrtime.bigint();
  } else if (command === 'stop') {
    measuring = false;
    const seconds = Number(process.hrtime.bigint() - measureStartedNs) / 1e9;
    for (const peer of peers) peer.running = false;
    process.stdout.write(`RESULT ${JSON.stringify({ peers: peers.length, answered, seconds, latencyBuckets: [...latencyBuckets], failures })}\n`);
    for (const peer of peers) peer.close();
    process.exit(0);
  }
});

async function waitForHold(): Promise<void> {
  // Up to 170 s, but not 15 s past the last reply: a peer left unanswered that long is not coming.
  const deadline = Date.now() + 170_000;
  let last = { answered, atMs: Date.now() };
  while (answered < peers.length && Date.now() < deadline && Date.now() - last.atMs < 15_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (answered !== last.answered) last = { answered, atMs: Date.now() };
  }
  process.stdout.write(`HELD ${JSON.stringify({ peers: peers.length, answered, failures })}\n`);
}
