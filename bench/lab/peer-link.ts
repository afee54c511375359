// What one peer connection carries over a home link, against TCP over the same path: a
// seeder with a 20mbit uplink and a leecher, RTT and loss as in L2/L3, the CDN nearly shut
// (1mbit) so that the leecher's bytes come from the peer. The reference is plain HTTP (TCP)
// from `peerfill serve` on a host with the seeder's link. Interleaved rounds.
//   node --import tsx bench/lab/peer-link.ts          (as root)
//   PF_PEER_LINK_MIB (32)  PF_PEER_LINK_ROUNDS (2)
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, labSupport, type HostSpec } from '../../test/lab/lab.ts';
import { runGet, serveFile, startSeed, stop } from '../../test/lab/peerfill.ts';
import { MiB, sha256File, writeTestFile } from '../client/procs.ts';

const BYTES = Number(process.env.PF_PEER_LINK_MIB ?? 32) * MiB;
const ROUNDS = Number(process.env.PF_PEER_LINK_ROUNDS ?? 2);
const SUPPORT = labSupport();

async function main(): Promise<number> {
  if (!SUPPORT.isSupported) {
    console.log(`bench/lab/peer-link skipped: ${SUPPORT.reason}`);
    return 2;
  }
  console.log(`bench/lab/peer-link: ${cpus().length} cores, node ${process.version}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}; ${SUPPORT.hasNetem ? 'netem' : 'userspace delay line'}`);
  const dir = await mkdtemp(join(tmpdir(), 'pf-bench-peer-link-'));
  await mkdir(join(dir, 'files'));
  let failures = 0;
  try {
    const sha256 = await writeTestFile(join(dir, 'files', 'f.bin'), BYTES);
    const paths: Array<{ label: string; seederDelay: number; leecherDelay: number; loss: number }> = [
      { label: 'no delay', seederDelay: 0, leecherDelay: 0, loss: 0 },
      { label: 'RTT 52 ms', seederDelay: 13, leecherDelay: 13, loss: 0 },
      { label: 'RTT 52 ms, 0.2% loss', seederDelay: 13, leecherDelay: 13, loss: 0.002 },
    ];
    console.log('path                    round  TCP Mbit/s  peer Mbit/s  peer/TCP  peer MiB  leecher CPU s');
    for (const path of paths) {
      const shape = (delayMs: number, loss: number): Partial<HostSpec> => (delayMs > 0 ? { delayMs, ...(loss > 0 ? { loss } : {}) } : {});
      const lab = await createLab([
        { name: 'cdn', down: '1gbit', up: '1mbit', ...shape(1, 0) },
        { name: 'ref', down: '1gbit', up: '20mbit', ...shape(path.seederDelay, 0) },
        { name: 'seeder', down: '100mbit', up: '20mbit', ...shape(path.seederDelay, 0) },
        { name: 'leecher', down: '100mbit', up: '20mbit', ...shape(path.leecherDelay, path.loss) },
      ]);
      try {
        const server = await serveFile(lab.host('cdn'), 'f.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data-cdn-${path.seederDelay}-${path.loss}`), port: 8080 });
        const ref = await serveFile(lab.host('ref'), 'f.bin', { filesDir: join(dir, 'files'), dataDir: join(dir, `data-ref-${path.seederDelay}-${path.loss}`), port: 8081 });
        const seeder = await startSeed(lab.host('seeder'), join(dir, 'files', 'f.bin'), server.serverUrl);
        for (let round = 1; round <= ROUNDS; round++) {
          const rates = new Map<string, { bitsPerSecond: number; peerBytes: number; cpu: number }>();
          for (const mode of round % 2 === 1 ? ['tcp', 'peer'] : ['peer', 'tcp']) {
            const out = join(dir, `out-${mode}.bin`);
            const result = await runGet(lab.host('leecher'), mode === 'tcp' ? ref.fileUrl : server.fileUrl, out, mode === 'tcp' ? ['--no-peers'] : []);
            if (result.exitCode !== 0 || (await sha256File(out)) !== sha256) {
              failures++;
              console.log(`FAIL ${path.label} ${mode}: exit ${result.exitCode} ${result.stderr.slice(-300)}`);
            }
            await rm(out, { force: true });
            // The rate over the span the bytes arrived in (first to last chunk), not start-up.
            const times = [...result.chunkAtMs.entries()].filter(([index]) => mode === 'tcp' || result.chunkSources.get(index) === 'peer').map(([, atMs]) => atMs);
            const peerBytes = typeof result.done?.from_peers_bytes === 'number' ? result.done.from_peers_bytes : 0;
            const bytes = mode === 'tcp' ? BYTES : peerBytes;
            const spanMs = Math.max(...times) - Math.min(...times);
            rates.set(mode, { bitsPerSecond: (bytes * 8 * (times.length - 1)) / times.length / (spanMs / 1000), peerBytes, cpu: result.cpuSeconds ?? Number.NaN });
          }
          const tcp = rates.get('tcp')!;
          const peer = rates.get('peer')!;
          console.log(
            `${path.label.padEnd(23)} ${String(round).padEnd(6)} ${(tcp.bitsPerSecond / 1e6).toFixed(1).padStart(10)}  ${(peer.bitsPerSecond / 1e6).toFixed(1).padStart(11)}  ${(peer.bitsPerSecond / tcp.bitsPerSecond).toFixed(2).padStart(8)}  ${(peer.peerBytes / MiB).toFixed(1).padStart(8)}  ${peer.cpu.toFixed(1).padStart(13)}`,
          );
        }
        await stop(seeder);
        await stop(ref.child);
        await stop(server.child);
      } finally {
        await lab.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(failures === 0 ? 'bench/lab/peer-link: every download finished with the right SHA-256' : `bench/lab/peer-link: ${failures} FAILURES`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();
