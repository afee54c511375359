// peerfill's roles started inside lab hosts, as real CLI processes: serve, seed, get.
// Shared by the lab's tests and bench/lab, so that both measure the same thing.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { coreCatcher } from './crash.ts';
import type { LabHost } from './host.ts';

const CLI = fileURLToPath(new URL('../../bin/peerfill.mjs', import.meta.url));
/** GNU time(1), when installed, gives each `get` its CPU seconds. */
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
let timeFiles = 0;

/** One JSON line of `--json` output. */
export type CliEvent = { event: string } & Record<string, unknown>;

export interface GetResult {
  exitCode: number | null;
  /** Set when the get died by a core-dumping signal (SIGSEGV...): the signal, and gdb's backtrace of its core when one was dumped. */
  crash: string | undefined;
  /** From spawn to exit, as a user would time it. */
  wallMs: number;
  done: CliEvent | undefined;
  /** The last progress line (it carries the policy in force and its decisions). */
  lastProgress: CliEvent | undefined;
  /** Chunk index -> 'peer' | 'http'. */
  chunkSources: Map<number, string>;
  /** Chunk index -> ms from spawn to its `chunk` event. */
  chunkAtMs: Map<number, number>;
  /** Ms from spawn to each `peer` event that connected. */
  peerAtMs: number[];
  /** Every `peer` event: ms from spawn, the peer, and whether it connected or left. */
  peerLog: Array<{ atMs: number; peerId: string; isConnected: boolean }>;
  /** How each peer connection was made (the `peer` events that connected). */
  connectionTypes: string[];
  /** Peer id -> how the connection to it was made (the last connection to each). */
  connectedPeers: Map<string, string>;
  /** The messages of `warning` events. */
  warnings: string[];
  /** Every JSON line, in order. */
  events: CliEvent[];
  /** User + system CPU seconds of the process (undefined without /usr/bin/time). */
  cpuSeconds: number | undefined;
  stderr: string;
}

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
}

function collectStderr(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (data: Buffer) => {
    if (text.length < 64 * 1024) text += data.toString();
  });
  return () => text;
}

function waitForLine(child: ChildProcess, what: string, matches: (line: string) => boolean, limitMs: number, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms waiting for ${what}; stderr: ${stderr().slice(-2000)}`)), limitMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what}: the process exited (${code}) first; stderr: ${stderr().slice(-2000)}`));
    });
    lines(child, (line) => {
      if (!matches(line)) return;
      clearTimeout(timer);
      resolve(line);
    });
  });
}

/** `peerfill serve` in `host`, listening on its address; resolves once it prints its page's URL. */
export async function startServe(
  host: LabHost,
  options: { filesDir: string; dataDir: string; port: number; extraArgs?: string[]; env?: NodeJS.ProcessEnv },
): Promise<{ url: string; child: ChildProcess }> {
  const args = [CLI, 'serve', '--files', options.filesDir, '--host', host.ip, '--port', String(options.port), '--announce-interval', '5', ...(options.extraArgs ?? [])];
  const child = host.spawn(process.execPath, args, { env: { ...process.env, PEERFILL_DATA_DIR: options.dataDir, PEERFILL_LOG_LEVEL: 'warn', ...options.env } });
  const stderr = collectStderr(child);
  await waitForLine(child, 'peerfill serve', (line) => line.includes('web page:'), 60_000, stderr);
  return { url: `http://${host.ip}:${options.port}`, child };
}

/** `peerfill seed` in `host`; resolves once it seeds (the file checked against the manifest). `events` collects its --json lines. */
export async function startSeed(host: LabHost, filePath: string, serverUrl: string, extraArgs: string[] = [], events: CliEvent[] = []): Promise<ChildProcess> {
  const child = host.spawn(process.execPath, [CLI, 'seed', filePath, '--server', serverUrl, '--json', ...extraArgs]);
  const stderr = collectStderr(child);
  lines(child, (line) => {
    try {
      events.push(JSON.parse(line) as CliEvent);
    } catch {
      // not a JSON line
    }
  });
  await waitForLine(child, 'peerfill seed', (line) => line.includes('"event":"seeding"'), 120_000, stderr);
  return child;
}

/** `peerfill get --json` in `host`, to completion (or until `limitMs`, when it is killed); `onEvent` sees each JSON line as it comes. */
export function runGet(host: LabHost, url: string, outPath: string, extraArgs: string[] = [], limitMs = 180_000, onEvent?: (event: CliEvent) => void): Promise<GetResult> {
  const startedAtMs = performance.now();
  const args = [CLI, 'get', url, '-o', outPath, '--json', ...extraArgs];
  const timeFile = TIME && join(tmpdir(), `pf-lab-time-${process.pid}-${timeFiles++}`);
  const crash = coreCatcher(`get-${host.name}`);
  const [command, commandArgs] = TIME && timeFile ? crash.wrap(TIME, ['-f', '%U %S', '-o', timeFile, process.execPath, ...args]) : crash.wrap(process.execPath, args);
  const child = host.spawn(command, commandArgs, { cwd: crash.cwd });
  const stderr = collectStderr(child);
  const result: GetResult = { exitCode: null, crash: undefined, wallMs: 0, done: undefined, lastProgress: undefined, chunkSources: new Map(), chunkAtMs: new Map(), peerAtMs: [], peerLog: [], connectionTypes: [], connectedPeers: new Map(), warnings: [], events: [], cpuSeconds: undefined, stderr: '' };
  lines(child, (line) => {
    let event: CliEvent;
    try {
      event = JSON.parse(line) as CliEvent;
    } catch {
      return;
    }
    result.events.push(event);
    onEvent?.(event);
    if (event.event === 'done') result.done = event;
    else if (event.event === 'progress') result.lastProgress = event;
    else if (event.event === 'chunk' && typeof event.index === 'number' && typeof event.source === 'string') {
      result.chunkSources.set(event.index, event.source);
      result.chunkAtMs.set(event.index, performance.now() - startedAtMs);
    }
    if (event.event === 'peer') result.peerLog.push({ atMs: performance.now() - startedAtMs, peerId: String(event.peer_id), isConnected: event.connected === true });
    if (event.event === 'peer' && event.connected === true) {
      result.peerAtMs.push(performance.now() - startedAtMs);
      result.connectionTypes.push(String(event.connection_type));
      result.connectedPeers.set(String(event.peer_id), String(event.connection_type));
    }
    if (event.event === 'warning' && typeof event.message === 'string') result.warnings.push(event.message);
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL'); // time(1) and the get it runs
      } catch {
        child.kill('SIGKILL');
      }
    }, limitMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      result.exitCode = code;
      result.wallMs = performance.now() - startedAtMs;
      result.stderr = stderr();
      result.crash = crash.report(code, signal, process.execPath);
      if (timeFile) {
        try {
          const [user, system] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
          result.cpuSeconds = (user ?? 0) + (system ?? 0);
        } catch {
          // killed before time(1) wrote it
        }
        rmSync(timeFile, { force: true });
      }
      resolve(result);
    });
  });
}

/** Stop a role started with startServe/startSeed and wait for it (the lab kills what is left). */
export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** `peerfill serve` in `host` (see startServe), and the download URL of the published file `name`. */
export async function serveFile(
  host: LabHost,
  name: string,
  options: { filesDir: string; dataDir: string; port: number; extraArgs?: string[]; env?: NodeJS.ProcessEnv },
): Promise<{ serverUrl: string; fileUrl: string; child: ChildProcess }> {
  const { url, child } = await startServe(host, options);
  const fileId = (await fileIds(host, url)).get(name);
  if (fileId === undefined) throw new Error(`peerfill serve in ${host.name} does not list ${name}`);
  return { serverUrl: url, fileUrl: `${url}/${fileId}`, child };
}

/** The catalog's file ids by name, asked from inside `host` (the lab's hosts are not reachable from the test process). */
export async function fileIds(host: LabHost, serverUrl: string): Promise<Map<string, string>> {
  const script = `fetch(${JSON.stringify(`${serverUrl}/files`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const { stdout } = await host.exec(process.execPath, ['-e', script]);
  const body = JSON.parse(stdout) as { files: Array<{ file_id: string; name: string }> };
  return new Map(body.files.map((file) => [file.name, file.file_id]));
}
