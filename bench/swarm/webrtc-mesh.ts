// What the swarm's peer traffic costs on this machine with nothing of peerfill in the way:
// N processes (bench/swarm's clients), each with a simple-peer data channel over @roamhq/wrtc
// to every other, each sending its share of one file copy to every peer in messages of the
// wire's size, with the stream's own backpressure. That is the (N-1) file copies a flash crowd
// must move between peers (the origin sends one at best), and N WebRTC stacks sharing the
// cores as the clients do. Connection setup is not timed: every process connects, then all
// start together. Prints one JSON line: when each process had received everything, and the
// CPU time of all of them.
// With `verify`, each process also does the per-byte work that any client which checks and
// keeps what it gets must do, and nothing else: it reads what it sends from a file, hashes
// every 256 KiB chunk it receives with SHA-256, writes it at its offset in 128 KiB pieces, and
// at the end hashes the whole file it received again (peerfill does that on a worker thread).
//   node --import tsx bench/swarm/webrtc-mesh.ts [processes] [MiB per process] [KiB per message] [verify]
// (run inside a network namespace: bench/swarm does)
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SimplePeer from 'simple-peer';
import { WRITE_BYTES } from '../../client/node/file-chunk-store.ts';
import { loadNodeWrtc } from '../../client/node/wrtc.ts';

const MiB = 1024 * 1024;
const LIMIT_MS = 240_000;
/** The manifest's chunk size for bench/swarm's 256 MiB file. */
const CHUNK_BYTES = 256 * 1024;

type ToParent =
  | { kind: 'signal'; to: number; data: unknown }
  | { kind: 'connected' }
  | { kind: 'done'; cpuMs: number }
  | { kind: 'failed'; error: string };
type ToChild = { kind: 'signal'; from: number; data: unknown } | { kind: 'go' };

/**
 * What a verifying client does with the bytes of the mesh: sends are read from a file,
 * received bytes are cut into chunks that are hashed and written at their offsets, and the
 * whole received file is hashed at the end.
 */
class ChunkWork {
  readonly #sourceFd: number;
  readonly #outFd: number;
  readonly #assemblies = new Map<number, { bytes: Buffer; filled: number; written: number }>();
  readonly #outBytes: number;

  /** Its files go in `dir`, which the parent made and removes. */
  constructor(
    dir: string,
    self: number,
    private readonly bytesPerPeer: number,
    count: number,
  ) {
    this.#sourceFd = openSync(join(dir, `source-${self}`), 'w+');
    const fill = Buffer.alloc(MiB, self);
    for (let written = 0; written < bytesPerPeer; written += MiB) writeSync(this.#sourceFd, fill, 0, Math.min(MiB, bytesPerPeer - written), written);
    this.#outFd = openSync(join(dir, `out-${self}`), 'w+');
    this.#outBytes = bytesPerPeer * (count - 1);
  }

  /** The next message to a peer, read from the source file at `offset` of what is sent to it. */
  read(offset: number, length: number): Buffer {
    const bytes = Buffer.allocUnsafe(length);
    readSync(this.#sourceFd, bytes, 0, length, offset % this.bytesPerPeer);
    return bytes;
  }

  /** Bytes from peer `slot` (0..count-2): into its chunk; a full chunk (or the last) is hashed and written. */
  receive(slot: number, data: Uint8Array): void {
    let assembly = this.#assemblies.get(slot);
    if (!assembly) this.#assemblies.set(slot, (assembly = { bytes: Buffer.allocUnsafe(CHUNK_BYTES), filled: 0, written: 0 }));
    for (let at = 0; at < data.length; ) {
      const take = Math.min(data.length - at, CHUNK_BYTES - assembly.filled);
      assembly.bytes.set(data.subarray(at, at + take), assembly.filled);
      assembly.filled += take;
      at += take;
      if (assembly.filled === CHUNK_BYTES || assembly.written + assembly.filled === this.bytesPerPeer) {
        createHash('sha256').update(assembly.bytes.subarray(0, assembly.filled)).digest();
        const base = slot * this.bytesPerPeer + assembly.written;
        for (let piece = 0; piece < assembly.filled; piece += WRITE_BYTES) {
          writeSync(this.#outFd, assembly.bytes, piece, Math.min(WRITE_BYTES, assembly.filled - piece), base + piece);
        }
        assembly.written += assembly.filled;
        assembly.filled = 0;
      }
    }
  }

  /**
   * The whole-file check: read back and hash everything received, through one reused 1 MiB
   * buffer. bench/client's sha256File (a stream of fresh 4 MiB buffers) made this floor 2.3-3.1 s
   * longer in two interleaved pairs of runs.
   */
  hashWhole(): void {
    const hash = createHash('sha256');
    const bytes = Buffer.allocUnsafe(MiB);
    for (let at = 0; at < this.#outBytes; at += MiB) hash.update(bytes.subarray(0, readSync(this.#outFd, bytes, 0, Math.min(MiB, this.#outBytes - at), at)));
    hash.digest();
  }
}

/** One process of the mesh: connect to every other, send `bytesPerPeer` to each, receive as much from each. */
function runMember(self: number, count: number, bytesPerPeer: number, messageBytes: number, workDir: string | undefined): void {
  const send = (message: ToParent) => process.send!(message);
  const wrtc = loadNodeWrtc();
  const peers = new Map<number, SimplePeer.Instance>();
  let connected = 0;
  let received = 0;
  let cpuAtGo = process.cpuUsage();
  const expected = bytesPerPeer * (count - 1);
  const work = workDir ? new ChunkWork(workDir, self, bytesPerPeer, count) : undefined;
  for (let other = 0; other < count; other++) {
    if (other === self) continue;
    const peer = new SimplePeer({ initiator: self < other, trickle: false, wrtc });
    peers.set(other, peer);
    peer.on('signal', (data) => send({ kind: 'signal', to: other, data }));
    peer.on('error', (error: Error) => send({ kind: 'failed', error: `${self}<->${other}: ${error.message}` }));
    peer.on('connect', () => {
      if (++connected === count - 1) send({ kind: 'connected' });
    });
    const slot = other < self ? other : other - 1;
    peer.on('data', (data: Uint8Array) => {
      received += data.length;
      work?.receive(slot, data);
      if (received === expected) {
        work?.hashWhole();
        const cpu = process.cpuUsage(cpuAtGo);
        send({ kind: 'done', cpuMs: (cpu.user + cpu.system) / 1000 });
      }
    });
  }
  const block = new Uint8Array(messageBytes).fill(self);
  process.on('message', (message: ToChild) => {
    if (message.kind === 'signal') peers.get(message.from)?.signal(message.data as SimplePeer.SignalData);
    if (message.kind !== 'go') return;
    cpuAtGo = process.cpuUsage();
    for (const peer of peers.values()) {
      let sent = 0;
      const pump = () => {
        while (sent < bytesPerPeer) {
          const message = work ? work.read(sent, messageBytes) : block;
          sent += messageBytes;
          if (!peer.write(message)) {
            peer.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }
  });
}

export interface MeshResult {
  ok: boolean;
  processes: number;
  mibPerProcess: number;
  messageKiB: number;
  /** Whether each process also did a verifying client's per-byte work (ChunkWork). */
  isVerifying: boolean;
  /** Seconds from the start to each process having received everything, in process order. */
  doneSeconds: number[];
  cpuSeconds: number;
  error?: string;
}

/** Start the mesh, relay the signalling, time it; never longer than LIMIT_MS. */
async function runMesh(count: number, mibPerProcess: number, messageKiB: number, isVerifying: boolean): Promise<MeshResult> {
  const messageBytes = messageKiB * 1024;
  const workDir = isVerifying ? mkdtempSync(join(tmpdir(), 'pf-mesh-')) : undefined;
  // Each process sends one share of its MiB to each peer, whole messages only.
  const bytesPerPeer = Math.ceil((mibPerProcess * MiB) / (count - 1) / messageBytes) * messageBytes;
  const base = { processes: count, mibPerProcess: (bytesPerPeer * (count - 1)) / MiB, messageKiB, isVerifying };
  const children: ChildProcess[] = [];
  const doneSeconds: number[] = new Array<number>(count).fill(NaN);
  let cpuMs = 0;
  let connected = 0;
  let startedMs = 0;
  try {
    return await new Promise<MeshResult>((resolve) => {
      const fail = (error: string) => resolve({ ok: false, ...base, doneSeconds, cpuSeconds: cpuMs / 1000, error });
      const timer = setTimeout(() => fail(`not done within ${LIMIT_MS / 1000} s`), LIMIT_MS);
      for (let index = 0; index < count; index++) {
        const child = fork(new URL(import.meta.url).pathname, ['member', String(index), String(count), String(bytesPerPeer), String(messageBytes), ...(workDir ? [workDir] : [])], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
        children.push(child);
        let stderr = '';
        child.stderr!.on('data', (piece: Buffer) => (stderr = (stderr + piece.toString()).slice(-500)));
        child.on('exit', (code) => {
          if (Number.isNaN(doneSeconds[index])) fail(`process ${index} exited ${code}: ${stderr.replace(/\s+/g, ' ')}`);
        });
        child.on('message', (message: ToParent) => {
          if (message.kind === 'signal') children[message.to]?.send({ kind: 'signal', from: index, data: message.data } satisfies ToChild);
          else if (message.kind === 'failed') fail(message.error);
          else if (message.kind === 'connected' && ++connected === count) {
            startedMs = performance.now();
            for (const each of children) each.send({ kind: 'go' } satisfies ToChild);
          } else if (message.kind === 'done') {
            doneSeconds[index] = (performance.now() - startedMs) / 1000;
            cpuMs += message.cpuMs;
            if (doneSeconds.every((s) => !Number.isNaN(s))) {
              clearTimeout(timer);
              resolve({ ok: true, ...base, doneSeconds, cpuSeconds: cpuMs / 1000 });
            }
          }
        });
      }
    });
  } finally {
    for (const child of children) child.kill('SIGKILL');
    if (workDir) {
      const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
      await Promise.all(running.map((child) => new Promise((resolve) => child.once('exit', resolve))));
      rmSync(workDir, { recursive: true, force: true });
    }
  }
}

if (process.argv[2] === 'member') {
  const [self, count, bytesPerPeer, messageBytes] = process.argv.slice(3, 7).map(Number) as [number, number, number, number];
  runMember(self, count, bytesPerPeer, messageBytes, process.argv[7]);
} else {
  const result = await runMesh(Number(process.argv[2] ?? 8), Number(process.argv[3] ?? 224), Number(process.argv[4] ?? 160), process.argv[5] === 'verify');
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
