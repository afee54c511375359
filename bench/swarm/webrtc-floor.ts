// The cost of moving bytes over a WebRTC data channel on this machine, with nothing of
// peerfill in the way: two simple-peer ends over @roamhq/wrtc in one process, writes of
// KiB each (16 by default; the wire sends messages of up to 128) with the stream's own
// backpressure. Prints one JSON line: throughput and CPU milliseconds per MiB (both ends
// together). bench/swarm runs it inside its namespace, at 16 KiB and at the wire's message
// size, and turns the cheaper into the least time the swarm's peer bytes can take.
//   node --import tsx bench/swarm/webrtc-floor.ts [MiB] [KiB]
import SimplePeer from 'simple-peer';
import { loadNodeWrtc } from '../../client/node/wrtc.ts';

const MiB = 1024 * 1024;
const TOTAL_BYTES = Number(process.argv[2] ?? 64) * MiB;
const WRITE_BYTES = Number(process.argv[3] ?? 16) * 1024;
const LIMIT_MS = 120_000;

const wrtc = loadNodeWrtc();
const sender = new SimplePeer({ initiator: true, trickle: false, wrtc });
const receiver = new SimplePeer({ trickle: false, wrtc });
sender.on('signal', (data) => receiver.signal(data));
receiver.on('signal', (data) => sender.signal(data));
const fail = (message: string) => {
  console.log(JSON.stringify({ ok: false, error: message }));
  process.exit(1);
};
sender.on('error', (error: Error) => fail(error.message));
receiver.on('error', (error: Error) => fail(error.message));
setTimeout(() => fail(`not done within ${LIMIT_MS / 1000} s`), LIMIT_MS).unref();

let startedMs = 0;
let cpuAtStart = process.cpuUsage();
let received = 0;
receiver.on('data', (data: Uint8Array) => {
  received += data.length;
  if (received < TOTAL_BYTES) return;
  const seconds = (performance.now() - startedMs) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({ ok: true, writeKiB: WRITE_BYTES / 1024, mib: TOTAL_BYTES / MiB, seconds, mibPerSecond: TOTAL_BYTES / MiB / seconds, cpuMsPerMiB: (cpuSeconds * 1000) / (TOTAL_BYTES / MiB) }));
  sender.destroy();
  receiver.destroy();
  process.exit(0);
});
sender.on('connect', () => {
  startedMs = performance.now();
  cpuAtStart = process.cpuUsage();
  const block = new Uint8Array(WRITE_BYTES).fill(7);
  let sent = 0;
  const pump = () => {
    while (sent < TOTAL_BYTES) {
      sent += WRITE_BYTES;
      if (!sender.write(block)) {
        sender.once('drain', pump);
        return;
      }
    }
  };
  pump();
});
