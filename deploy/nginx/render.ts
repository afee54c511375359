import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Renders the peerfill nginx edge (peerfill-edge.conf + peerfill-auth.js) for one site,
 * so operators and the tests run the same config. See docs/edge.md.
 *
 *   npx tsx deploy/nginx/render.ts --listen 8080 --upstream http://127.0.0.1:3000 \
 *     --cache-dir /var/cache/peerfill [--keys-file PATH] [--http-only]
 */
export interface EdgeConfigOptions {
  /** `listen` argument: a port, or `host:port`. */
  listen: number | string;
  /** The origin (`peerfill serve`): `http://host:port`, no path. */
  upstreamUrl: string;
  /** Where cached slices live; created by nginx. */
  cacheDir: string;
  /** A `kid:secret,...` file read on every request; without it the keys come from PEERFILL_SIGNING_KEYS. */
  keysFile?: string;
  /** Default: peerfill-auth.js beside this file. */
  authScriptPath?: string;
  /** Default `10g`. */
  cacheMaxSize?: string;
  /** How long a cached slice stays valid when the origin sends no Cache-Control (`proxy_cache_valid`). Default `10m`. */
  cacheValid?: string;
  /** How long waiters on a slice being fetched wait before going to the origin themselves. Default `30s`. */
  lockTimeout?: string;
  /** Access log path, or false for none. Default false. */
  accessLog?: string | false;
}

export interface NginxConfOptions extends EdgeConfigOptions {
  /** Default: Debian's libnginx-mod-http-js path. */
  jsModulePath?: string;
  /** Directory for nginx's temp files (client bodies, proxy buffers). Default: nginx's built-in paths. */
  tempDir?: string;
  /** `user` directive; only meaningful when the master runs as root. */
  user?: string;
  /** Default `auto`. */
  workerProcesses?: number | 'auto';
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
const DEFAULT_JS_MODULE = '/usr/lib/nginx/modules/ngx_http_js_module.so';

/** Quotes a value for nginx, refusing what could break out of the directive. */
export function quote(value: string, what: string): string {
  const hasControl = [...value].some((char) => char.charCodeAt(0) < 0x20);
  if (value === '' || hasControl || /["'\\;{}$]/.test(value)) throw new TypeError(`${what}: unsafe for nginx config: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

export function parseUpstream(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' || (parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '') {
    throw new TypeError(`upstreamUrl must be http://host:port with no path: ${url}`);
  }
  return parsed.port === '' ? `${parsed.hostname}:80` : parsed.host;
}

export function checkListen(listen: number | string): string {
  const text = String(listen);
  if (!/^(\[[0-9a-fA-F:.]+\]:|[A-Za-z0-9.-]+:)?[0-9]{1,5}$/.test(text)) throw new TypeError(`listen: not a port or host:port: ${text}`);
  return text;
}

function checkSize(value: string, what: string): string {
  if (!/^[0-9]+[kmgdhs]?$/.test(value)) throw new TypeError(`${what}: not an nginx size or time: ${value}`);
  return value;
}

/** The http-level config (what goes inside `http { }`). */
export function renderEdgeConfig(options: EdgeConfigOptions): string {
  const values: Record<string, string> = {
    LISTEN: checkListen(options.listen),
    UPSTREAM_HOST_PORT: parseUpstream(options.upstreamUrl),
    CACHE_DIR: quote(options.cacheDir, 'cacheDir'),
    KEYS_ZONE: '16m',
    CACHE_MAX_SIZE: checkSize(options.cacheMaxSize ?? '10g', 'cacheMaxSize'),
    CACHE_INACTIVE: '7d',
    CACHE_VALID: checkSize(options.cacheValid ?? '10m', 'cacheValid'),
    LOCK_TIMEOUT: checkSize(options.lockTimeout ?? '30s', 'lockTimeout'),
    AUTH_SCRIPT: quote(options.authScriptPath ?? `${HERE}peerfill-auth.js`, 'authScriptPath'),
    // Inside quotes already in the template; an empty value means "use the environment".
    KEYS_FILE: options.keysFile === undefined ? '' : quote(options.keysFile, 'keysFile').slice(1, -1),
    ACCESS_LOG: options.accessLog ? `${quote(options.accessLog, 'accessLog')} peerfill_edge` : 'off',
  };
  const template = readFileSync(`${HERE}peerfill-edge.conf`, 'utf8');
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`peerfill-edge.conf: unknown placeholder ${name}`);
    return value;
  });
}

/** A whole nginx.conf: the njs module, the key variable passed through, and the edge. */
export function renderNginxConf(options: NginxConfOptions): string {
  const temp = options.tempDir === undefined ? [] : ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
    (kind) => `    ${kind}_temp_path ${quote(`${options.tempDir}/${kind}`, 'tempDir')};`,
  );
  const edge = renderEdgeConfig(options).trimEnd().split('\n').map((line) => (line === '' ? '' : `    ${line}`));
  return [
    `load_module ${quote(options.jsModulePath ?? DEFAULT_JS_MODULE, 'jsModulePath')};`,
    'env PEERFILL_SIGNING_KEYS;',
    ...(options.user === undefined ? [] : [`user ${quote(options.user, 'user')};`]),
    `worker_processes ${options.workerProcesses ?? 'auto'};`,
    'events { worker_connections 1024; }',
    'http {',
    ...temp,
    '    sendfile on;',
    '    tcp_nopush on;',
    '    keepalive_timeout 65s;',
    ...edge,
    '}',
    '',
  ].join('\n');
}

function cli(argv: string[]): void {
  const flags = new Map<string, string>();
  let isHttpOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i] ?? '';
    if (name === '--http-only') isHttpOnly = true;
    else if (name.startsWith('--') && argv[i + 1] !== undefined) flags.set(name.slice(2), argv[++i] ?? '');
    else throw new TypeError(`unexpected argument: ${name}`);
  }
  const need = (name: string): string => {
    const value = flags.get(name);
    if (value === undefined) throw new TypeError(`--${name} is required`);
    return value;
  };
  const options: NginxConfOptions = {
    listen: need('listen'),
    upstreamUrl: need('upstream'),
    cacheDir: need('cache-dir'),
    keysFile: flags.get('keys-file'),
    cacheMaxSize: flags.get('cache-max-size'),
    accessLog: flags.get('access-log') ?? false,
  };
  process.stdout.write(isHttpOnly ? renderEdgeConfig(options) : renderNginxConf(options));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    cli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`render: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  }
}
