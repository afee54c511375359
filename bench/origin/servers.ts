// The two contenders of bench/origin/run.ts, each its own process tree on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from '../client/procs.ts';

const NGINX = '/usr/sbin/nginx';

export interface RunningServer {
  pid: number;
  /** Where the data (the file's bytes) is served. */
  baseUrl: string;
  /** Where the API is served (the same as baseUrl unless peerfill runs data-plane workers). */
  controlUrl: string;
  stop(): Promise<void>;
}

export async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`);
    try {
      await fetch(url, { method: 'HEAD' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`${url} did not come up in ${timeoutMs} ms`);
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
}

/** Debian's nginx serving `root` statically (sendfile), config written into `dir`. */
export async function startNginx(options: { root: string; dir: string; port: number; workers: number }): Promise<RunningServer> {
  // mkdtemp makes 0700 directories; nginx workers run unprivileged when we are root.
  await chmod(join(options.root, '..'), 0o755);
  await chmod(options.root, 0o755);
  await mkdir(options.dir, { recursive: true });
  const conf = `worker_processes ${options.workers};
error_log ${options.dir}/error.log warn;
pid ${options.dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${options.dir}/body; proxy_temp_path ${options.dir}/proxy; fastcgi_temp_path ${options.dir}/fastcgi;
  uwsgi_temp_path ${options.dir}/uwsgi; scgi_temp_path ${options.dir}/scgi;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  server { listen 127.0.0.1:${options.port}; root ${options.root}; }
}
`;
  await writeFile(join(options.dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', options.dir, '-c', join(options.dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
  const baseUrl = `http://127.0.0.1:${options.port}`;
  await waitForHttp(`${baseUrl}/`, child);
  return { pid: child.pid!, baseUrl, controlUrl: baseUrl, stop: stopper(child) };
}

/** `peerfill serve` on a folder, as a user runs it (the CLI, its bundle, its defaults). */
export async function startPeerfillServe(options: { filesDir: string; dataDir: string; port: number; dataPort: number; signingKeys: string; workers: number }): Promise<RunningServer> {
  const args = [CLI, 'serve', '--files', options.filesDir, '--data-dir', options.dataDir, '--port', String(options.port), '--host', '127.0.0.1', '--log-level', 'warn'];
  if (options.workers > 1) args.push('--workers', String(options.workers), '--data-port', String(options.dataPort));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PEERFILL_SIGNING_KEYS: options.signingKeys } });
  const controlUrl = `http://127.0.0.1:${options.port}`;
  const baseUrl = options.workers > 1 ? `http://127.0.0.1:${options.dataPort}` : controlUrl;
  await waitForHttp(`${controlUrl}/healthz`, child);
  await waitForHttp(`${baseUrl}/healthz`, child);
  return { pid: child.pid!, baseUrl, controlUrl, stop: stopper(child) };
}

/** One Range GET checked the way a client checks it: 206, the exact Content-Range, the exact length. */
export async function checkRange(url: string, start: number, length: number, fileSizeBytes: number): Promise<{ error?: string; body: Buffer }> {
  const end = start + length - 1;
  const response = await fetch(url, { headers: { range: `bytes=${start}-${end}` } });
  const body = Buffer.from(await response.arrayBuffer());
  const wanted = `bytes ${start}-${end}/${fileSizeBytes}`;
  if (response.status !== 206) return { error: `status ${response.status}, wanted 206`, body };
  if (response.headers.get('content-range') !== wanted) return { error: `content-range ${response.headers.get('content-range')}, wanted ${wanted}`, body };
  if (body.length !== length) return { error: `${body.length} bytes, wanted ${length}`, body };
  return { body };
}
