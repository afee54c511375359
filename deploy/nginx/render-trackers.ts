import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkListen, parseUpstream, quote } from './render.ts';

/**
 * Renders peerfill-trackers.conf: nginx as the one public address of several
 * `peerfill tracker` processes (WebSocket load balancer) and their origin.
 *
 *   npx tsx deploy/nginx/render-trackers.ts --listen 8080 --origin http://127.0.0.1:3000 \
 *     --tracker http://127.0.0.1:3101 --tracker http://127.0.0.1:3102 [--workers N]
 */
export interface TrackersConfigOptions {
  /** `listen` argument: a port, or `host:port`. */
  listen: number | string;
  /** The tracker processes, each `http://host:port`. */
  trackerUrls: string[];
  /** The origin (`peerfill serve`), `http://host:port`: files, manifests, signed bytes. */
  originUrl: string;
  /** How long a quiet peer socket is kept open (must exceed the announce interval). Default `300s`. */
  socketTimeout?: string;
  /** Default `2s`: a dead tracker process is skipped quickly. */
  connectTimeout?: string;
}

export interface TrackersNginxConfOptions extends TrackersConfigOptions {
  /** Directory for nginx's temp files. Default: nginx's built-in paths. */
  tempDir?: string;
  /** `user` directive; only meaningful when the master runs as root. */
  user?: string;
  /** Default `auto`. */
  workerProcesses?: number | 'auto';
  /** Access log path, or none. */
  accessLog?: string;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));

function checkTime(value: string, what: string): string {
  if (!/^[0-9]+(ms|s|m|h)?$/.test(value)) throw new TypeError(`${what}: not an nginx time: ${value}`);
  return value;
}

/** The http-level config (what goes inside `http { }`). */
export function renderTrackersConfig(options: TrackersConfigOptions): string {
  if (options.trackerUrls.length === 0) throw new TypeError('trackerUrls: at least one tracker process is needed');
  const values: Record<string, string> = {
    LISTEN: checkListen(options.listen),
    // Passive health checks: one refused connection takes a process out for 5 s.
    TRACKER_SERVERS: options.trackerUrls.map((url) => `    server ${parseUpstream(url)} max_fails=1 fail_timeout=5s;`).join('\n'),
    ORIGIN_HOST_PORT: parseUpstream(options.originUrl),
    SOCKET_TIMEOUT: checkTime(options.socketTimeout ?? '300s', 'socketTimeout'),
    CONNECT_TIMEOUT: checkTime(options.connectTimeout ?? '2s', 'connectTimeout'),
  };
  const template = readFileSync(`${HERE}peerfill-trackers.conf`, 'utf8');
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`peerfill-trackers.conf: unknown placeholder ${name}`);
    return value;
  });
}

/** A whole nginx.conf around renderTrackersConfig. */
export function renderTrackersNginxConf(options: TrackersNginxConfOptions): string {
  const temp = options.tempDir === undefined ? [] : ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
    (kind) => `    ${kind}_temp_path ${quote(`${options.tempDir}/${kind}`, 'tempDir')};`,
  );
  const body = renderTrackersConfig(options).trimEnd().split('\n').map((line) => (line === '' ? '' : `    ${line}`));
  return [
    ...(options.user === undefined ? [] : [`user ${quote(options.user, 'user')};`]),
    `worker_processes ${options.workerProcesses ?? 'auto'};`,
    // Each peer holds one socket to nginx and one from nginx to a tracker.
    'events { worker_connections 16384; }',
    'http {',
    ...temp,
    `    access_log ${options.accessLog === undefined ? 'off' : quote(options.accessLog, 'accessLog')};`,
    ...body,
    '}',
    '',
  ].join('\n');
}

function cli(argv: string[]): void {
  const trackerUrls: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i] ?? '';
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) throw new TypeError(`unexpected argument: ${name}`);
    if (name === '--tracker') trackerUrls.push(value);
    else flags.set(name.slice(2), value);
    i++;
  }
  const listen = flags.get('listen');
  const originUrl = flags.get('origin');
  if (listen === undefined || originUrl === undefined) throw new TypeError('--listen and --origin are required');
  const workers = flags.get('workers');
  process.stdout.write(renderTrackersNginxConf({ listen, originUrl, trackerUrls, workerProcesses: workers === undefined ? 'auto' : Number(workers) }));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    cli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`render-trackers: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  }
}
