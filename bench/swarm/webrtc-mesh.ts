// What the swarm's peer traffic costs on this machine with nothing of peerfill in the way:
// N processes (bench/swarm's clients), each with a simple-peer data channel over @roamhq/wrtc
// to every other, each sending its share of one file copy to every peer in messages of the
// wire's size, with the stream's own backpressure. That is the (N-1) file copies a flash crowd
// must move between peers (the origin sends one at best), and N WebRTC stacks sharing the
// cores as the clients do. Connection setup is not timed: every process connects, then all
// start together. Prints one JSON line: when each process had received everything, and the
// CPU time of all of them.
//   node --import tsx bench/swarm/webrtc-mesh.ts [processes] [MiB per process] [KiB per message]
// (run inside a network namespace: bench/swarm does)
import { fork, type ChildProcess } from 'node:child_process';
import SimplePeer from 'simple-peer';
import { loadNodeWrtc } from '../../client/node/wrtc.ts';

const MiB = 1024 * 1024;
const LIMIT_MS = 240_000;

type ToParent =
  | { kind: 'signal'; to: number; data: unknown }
  | { kind: 'connected' }
  | { kind: 'done'; cpuMs: number }
  | { kind: 'failed'; error: string };
type ToChild = { kind: 'signal'; from: number; data: unknown } | { kind: 'go' };

/** One process of the mesh: connect to every other, send `bytesPerPeer` to each, receive as much from each. */
function runMember(self: number, count: number, bytesPerPeer: number, messageBytes: number): void {
  const send = (message: ToParent) => process.send!(message);
  const wrtc = loadNodeWrtc();
  const peers = new Map<number, SimplePeer.Instance>();
  let connected = 0;
  let received = 0;
  let cpuAtGo = process.cpuUsage();
  const expected = bytesPerPeer * (count - 1);
  for (let other = 0; other < count; other++) {
    if (other === self) continue;
    const peer = new SimplePeer({ initiator: self < other, trickle: false, wrtc });
    peers.set(other, peer);
    peer.on('signal', (data) => send({ kind: 'signal', to: other, data }));
    peer.on('error', (error: Error) => send({ kind: 'failed', error: `${self}<->${other}: ${error.message}` }));
    peer.on('connect', () => {
      if (++connected === count - 1) send({ kind: 'connected' });
    });
    peer.on('data', (data: Uint8Array) => {
      received += data.length;
      if (received === expected) {
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
          sent += messageBytes;
          if (!peer.write(block)) {
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
  /** Seconds from the start to each process having received everything, in process order. */
  doneSeconds: number[];
  cpuSeconds: number;
  error?: string;
}

/** Start the mesh, relay the signalling, time it; never longer than LIMIT_MS. */
async function runMesh(count: number, mibPerProcess: number, messageKiB: number): Promise<MeshResult> {
  const messageBytes = messageKiB * 1024;
  // Each process sends one share of its MiB to each peer, whole messages only.
  const bytesPerPeer = Math.ceil((mibPerProcess * MiB) / (count - 1) / messageBytes) * messageBytes;
  const base = { processes: count, mibPerProcess: (bytesPerPeer * (count - 1)) / MiB, messageKiB };
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
        const child = fork(new URL(import.meta.url).pathname, ['member', String(index), String(count), String(bytesPerPeer), String(messageBytes)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
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
  }
}

if (process.argv[2] === 'member') {
  const [self, count, bytesPerPeer, messageBytes] = process.argv.slice(3).map(Number) as [number, number, number, number];
  runMember(self, count, bytesPerPeer, messageBytes);
} else {
  const result = await runMesh(Number(process.argv[2] ?? 8), Number(process.argv[3] ?? 224), Number(process.argv[4] ?? 128));
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
