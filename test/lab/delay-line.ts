/**
 * Delay, jitter and loss without netem: tools/delay-line.c holds each packet's NFQUEUE verdict
 * until its time has come. The lab uses it when the kernel has no netem qdisc but has NFQUEUE
 * (CONFIG_NETFILTER_XT_TARGET_NFQUEUE) and libnetfilter_queue is installed to build it with.
 * In a host, iptables (mangle) queues what eth0 receives to one delay-line, which holds it for
 * twice the host's delay. The RTT between two hosts is then 2*(d1+d2), as with netem's delay in
 * each direction; only the split of one-way delays differs (each host's share is on its way in).
 * Nothing is delayed on its way out: a packet still owned by a local socket counts against TCP
 * small queues (about 1 ms of the pacing rate), so holding it there capped a 100 Mbit/s TCP
 * transfer at 4 Mbit/s across a 40 ms RTT. netem orphans what it holds for the same reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from './command.ts';
import { LabError } from './lab-error.ts';
import type { LinkShape } from './tc.ts';

const SOURCE = fileURLToPath(new URL('./tools/delay-line.c', import.meta.url));
const INGRESS_QUEUE = 2;

let built: Promise<string> | undefined;

/** Compile tools/delay-line.c once per source version (cached in the temp folder). */
export function buildDelayLine(): Promise<string> {
  built ??= (async () => {
    const source = readFileSync(SOURCE);
    const dir = join(tmpdir(), 'peerfill-lab-tools');
    const binary = join(dir, `delay-line-${createHash('sha256').update(source).digest('hex').slice(0, 12)}`);
    if (existsSync(binary)) return binary;
    mkdirSync(dir, { recursive: true });
    const partial = `${binary}.${process.pid}.tmp`;
    await run('cc', ['-O2', '-Wall', '-o', partial, SOURCE, '-lnetfilter_queue']);
    renameSync(partial, binary);
    return binary;
  })();
  return built;
}

/** The iptables-restore lines that queue what a host's eth0 receives to its delay line. */
export function delayRules(): string {
  return ['*mangle', `-A PREROUTING -i eth0 -j NFQUEUE --queue-num ${INGRESS_QUEUE}`, 'COMMIT', ''].join('\n');
}

/**
 * Start a host's delay line inside `netns` (twice its delay, its jitter, and its loss: a
 * downlink property), then queue eth0's ingress to it. `children` is the lab's process set:
 * close() kills it with everything else.
 */
export async function startDelayLines(netns: string, shape: Pick<LinkShape, 'delayMs' | 'jitterMs' | 'loss'>, seed: number, children: Set<ChildProcess>): Promise<void> {
  const binary = await buildDelayLine();
  const lines: Array<[number, number]> = [[INGRESS_QUEUE, shape.loss]];
  await Promise.all(
    lines.map(([queue, loss]) => {
      const child = spawn('ip', ['netns', 'exec', netns, binary, String(queue), String(2 * shape.delayMs), String(shape.jitterMs), String(loss), String(seed + queue)], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      let stderr = '';
      child.stderr?.on('data', (data: Buffer) => {
        if (stderr.length < 4096) stderr += data.toString();
      });
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new LabError('PF_ERR_LAB_COMMAND', `delay-line ${queue} in ${netns} did not start: ${stderr}`)), 10_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new LabError('PF_ERR_LAB_COMMAND', `delay-line ${queue} in ${netns} exited (${code}): ${stderr}`));
        });
        if (child.stdout) {
          createInterface({ input: child.stdout }).once('line', () => {
            clearTimeout(timer);
            resolve();
          });
        }
      });
    }),
  );
  // Queued only once the line listens: a queue with no listener drops every packet.
  await run('ip', ['netns', 'exec', netns, 'iptables-restore', '--noflush'], delayRules());
}
