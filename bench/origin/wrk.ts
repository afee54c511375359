import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WRK = '/usr/bin/wrk';
const TIME = '/usr/bin/time';
const SCRIPT = fileURLToPath(new URL('./range.lua', import.meta.url));

export interface WrkOptions {
  /** `http://host:port`; the path (with its query) goes to the script. */
  baseUrl: string;
  pathAndQuery: string;
  rangeBytes: number;
  fileSizeBytes: number;
  threads: number;
  connections: number;
  durationSeconds: number;
}

export interface WrkResult {
  requests: number;
  bytes: number;
  elapsedSeconds: number;
  /** wrk's socket errors and answers with status >= 400, plus any bytes-per-answer mismatch. */
  failures: string[];
  /** Time from writing a request to reading its whole answer (wrk's latency), in ms. */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** CPU-seconds wrk itself used (user + system, from /usr/bin/time). */
  wrkCpuSeconds: number;
}

interface WrkSummary {
  requests: number;
  bytes: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
}

/** Answer headers are a few hundred bytes; anything beyond this per answer means a wrong body (a 200 of the whole file). */
const HEADER_ALLOWANCE_BYTES = 1024;

/** One bounded wrk run in its own process (killed if it overstays by 15 s); never throws on a bad answer, reports it. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = ['-f', 'PF_CPU %U %S', WRK, '-t', String(options.threads), '-c', String(options.connections), '-d', `${options.durationSeconds}s`, '-s', SCRIPT, options.baseUrl, '--', options.pathAndQuery, String(options.rangeBytes), String(options.fileSizeBytes)];
  const child = spawn(TIME, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), (options.durationSeconds + 15) * 1000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const summaryLine = stdout.split('\n').find((line) => line.startsWith('PF_WRK '));
  const cpuLine = stderr.split('\n').find((line) => line.startsWith('PF_CPU '));
  if (code !== 0 || !summaryLine || !cpuLine) throw new Error(`wrk failed (exit ${code}): ${stderr.trim() || stdout.trim()}`);
  const summary = JSON.parse(summaryLine.slice('PF_WRK '.length)) as WrkSummary;
  const [user, system] = cpuLine.slice('PF_CPU '.length).split(' ').map(Number);
  const failures: string[] = [];
  for (const kind of ['connect', 'read', 'write', 'timeout', 'status'] as const) {
    if (summary[kind] > 0) failures.push(`${summary[kind]} ${kind === 'status' ? 'answers with status >= 400' : `${kind} errors`}`);
  }
  const perAnswer = summary.requests > 0 ? summary.bytes / summary.requests : 0;
  if (summary.requests === 0) failures.push('no answers');
  else if (perAnswer < options.rangeBytes || perAnswer > options.rangeBytes + HEADER_ALLOWANCE_BYTES) failures.push(`${perAnswer.toFixed(0)} bytes per answer for ${options.rangeBytes}-byte ranges`);
  const ms = (us: number) => us / 1000;
  return {
    requests: summary.requests,
    bytes: summary.bytes,
    elapsedSeconds: summary.duration_us / 1e6,
    failures,
    latencyMs: { p50: ms(summary.p50_us), p90: ms(summary.p90_us), p99: ms(summary.p99_us), max: ms(summary.max_us) },
    wrkCpuSeconds: (user ?? 0) + (system ?? 0),
  };
}
