// One lab host: a process launcher and byte counters bound to the host's namespace.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { run, type CommandOutput } from './command.ts';
import { LabError } from './lab-error.ts';
import type { NatKind } from './nat.ts';

// How long close() waits for a SIGKILLed process group before deleting its namespace anyway.
const KILL_WAIT_MS = 2_000;

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default 'pipe', as for node:child_process spawn. */
  stdio?: StdioOptions;
}

export interface LabHost {
  readonly name: string;
  readonly netns: string;
  /**
   * The host's own address: 10.99.0.x on the hub's network (labs are isolated from each other),
   * or 192.168.x.2 behind its NAT router.
   */
  readonly ip: string;
  /** Where the host appears to others: its own address, or its router's on the hub (10.99.0.x). */
  readonly publicIp: string;
  /** The kind of NAT between the host and the hub, if any. */
  readonly nat: NatKind | undefined;
  /** Start `command` inside the host (`ip netns exec`). close() kills its process group. */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Run `command` inside the host to completion; rejects with its stderr on a non-zero exit. */
  exec(command: string, args: string[]): Promise<CommandOutput>;
  /** The kernel's byte counters of the host's eth0. */
  counters(): Promise<{ rxBytes: number; txBytes: number }>;
}

export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL'); // the whole group: the command and whatever it started
  } catch {
    // Already gone.
  }
}

export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, KILL_WAIT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export function makeHost(
  { name, netns, ip, publicIp, nat }: { name: string; netns: string; ip: string; publicIp: string; nat: NatKind | undefined },
  children: Set<ChildProcess>,
): LabHost {
  return {
    name,
    netns,
    ip,
    publicIp,
    nat,
    spawn(command, args, options = {}) {
      // detached: the child leads its own process group, so close() can kill all it started.
      const child = spawn('ip', ['netns', 'exec', netns, command, ...args], {
        detached: true,
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: options.stdio ?? 'pipe',
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    exec(command, args) {
      return run('ip', ['netns', 'exec', netns, command, ...args]);
    },
    async counters() {
      const { stdout } = await run('ip', ['-n', netns, '-j', '-s', 'link', 'show', 'dev', 'eth0']);
      return parseLinkCounters(JSON.parse(stdout));
    },
  };
}

/** `ip -j -s link show dev X` output -> byte counters; the JSON is unknown until checked. */
export function parseLinkCounters(json: unknown): { rxBytes: number; txBytes: number } {
  const link: unknown = Array.isArray(json) ? json[0] : undefined;
  const stats = isRecord(link) && isRecord(link.stats64) ? link.stats64 : undefined;
  const rxBytes = stats && isRecord(stats.rx) ? stats.rx.bytes : undefined;
  const txBytes = stats && isRecord(stats.tx) ? stats.tx.bytes : undefined;
  if (typeof rxBytes !== 'number' || typeof txBytes !== 'number') {
    throw new LabError('PF_ERR_LAB_COMMAND', 'unexpected `ip -j -s link show` output: no stats64.rx.bytes / tx.bytes');
  }
  return { rxBytes, txBytes };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
