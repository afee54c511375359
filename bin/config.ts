import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolve } from 'node:path';
import type { OriginConfig } from '../origin/index.ts';
import { DEFAULT_TURN_TTL_SECONDS, iceSettingsErrors, type IceSettings } from '../tracker/ice-servers.ts';
import { TRUST_NO_PROXY, parseTrustProxy, type ProxyTrust } from '../tracker/client-address.ts';
import { parseRedisUrl } from '../tracker/store/redis-url.ts';
import { parseBitRate, parseSigningKeys, type SigningKey } from '../protocol/index.ts';

/**
 * Configuration for the server commands: flags, else environment (`PEERFILL_*`,
 * `REDIS_URL`, S3 settings), else defaults. Validated once; every problem is listed.
 * Secrets (signing keys, S3 credentials) come only from the environment.
 */
export interface ServerConfig {
  host: string;
  port: number;
  filesDir: string;
  dataDir: string;
  /** Base URL that minted download URLs point at (a CDN edge, or this server). */
  publicUrl: string;
  /** Base URL clients use for the API and tracker (this server). */
  serverUrl: string;
  signingKeys: SigningKey[] | undefined;
  /** PEERFILL_PUBLISHER_KEYS (environment only): grant keys and API keys for private files. */
  publisherKeys: SigningKey[] | undefined;
  /** Which files are private: PEERFILL_DEFAULT_VISIBILITY and PEERFILL_PRIVATE_PREFIXES (plus `add --private`). */
  visibility: { isPrivateByDefault: boolean; privatePrefixes: string[] };
  urlTtlSeconds: number;
  egressBytesPerSecond: number | undefined;
  redisUrl: string | undefined;
  s3: S3Settings | undefined;
  open: boolean;
  announceIntervalSeconds: number;
  /** The publisher's speed floor (bits/s) handed to clients with each session; undefined = never slower than HTTP. */
  speedFloorBitsPerSecond: number | undefined;
  /** The publisher's STUN/TURN servers (`--stun`, `--turn`, PEERFILL_TURN_SECRET); none = clients keep their defaults. */
  ice: IceSettings;
  snapshotIntervalMs: number;
  /** A connection on which nothing moves for this long is closed (stalled readers, silent uploaders); never a bound on a moving download. */
  idleTimeoutMs: number;
  /** A request (headers and body) must arrive within this. */
  requestTimeoutMs: number;
  /** POST /downloads per client address: sustained per second, and the burst on top. */
  sessionCreatesPerSecond: number;
  sessionCreateBurst: number;
  /** Sessions the store holds at most. */
  maxSessions: number;
  /**
   * `--trust-proxy` / PEERFILL_TRUST_PROXY: the proxies in front (addresses, CIDRs, loopback|linklocal|uniquelocal),
   * whose X-Forwarded-For names the client for per-address limits; none by default (the header is ignored).
   */
  trustProxy: ProxyTrust;
  /** PEERFILL_METRICS_TOKEN (environment only); unset = /metrics for loopback clients only. */
  metricsToken: string | undefined;
  /** How often the catalog is rescanned for new or changed files (0: only on SIGHUP). */
  rescanIntervalSeconds: number;
  /** `--workers N`: data-plane processes (node:cluster) on `dataPort`; 1 = everything in one process. */
  workers: number;
  /** The port the data-plane workers share (only with workers > 1). */
  dataPort: number | undefined;
  /**
   * `--tls-cert` and `--tls-key` (PEERFILL_TLS_CERT, PEERFILL_TLS_KEY): HTTPS for the page, the
   * API, the data plane (workers too) and wss for the tracker; the default URLs become https://.
   * Read and checked by `loadTlsCredentials` when the server starts.
   */
  tls: { certPath: string; keyPath: string } | undefined;
  logLevel: string;
}

export interface S3Settings {
  bucket: string;
  prefix: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  presign: boolean;
}

export class ConfigError extends Error {
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

export const SERVER_OPTIONS = {
  files: { type: 'string' },
  'data-dir': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'public-url': { type: 'string' },
  'server-url': { type: 'string' },
  'url-ttl': { type: 'string' },
  'egress-limit': { type: 'string' },
  'speed-floor': { type: 'string' },
  stun: { type: 'string', multiple: true },
  turn: { type: 'string', multiple: true },
  'turn-ttl': { type: 'string' },
  redis: { type: 'string' },
  open: { type: 'boolean' },
  'announce-interval': { type: 'string' },
  'log-level': { type: 'string' },
  'rescan-interval': { type: 'string' },
  workers: { type: 'string' },
  'data-port': { type: 'string' },
  'trust-proxy': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Env = Record<string, string | undefined>;

function integer(errors: string[], name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    errors.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
    return fallback;
  }
  return value;
}

function httpUrl(errors: string[], name: string, raw: string): string {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') errors.push(`${name} must be an http(s) URL (got "${raw}")`);
    return url.href.replace(/\/+$/, '');
  } catch {
    errors.push(`${name} must be a URL (got "${raw}")`);
    return raw;
  }
}

function flagOrEnv(flag: string | undefined, env: string | undefined): string | undefined {
  return flag ?? (env === '' ? undefined : env);
}

function bool(errors: string[], name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  errors.push(`${name} must be true or false (got "${raw}")`);
  return fallback;
}

/** Parse server flags + environment into a validated config, or throw ConfigError listing every problem. */
export function loadServerConfig(argv: string[], env: Env, cwd: string): ServerConfig {
  const errors: string[] = [];
  let values: Partial<Record<keyof typeof SERVER_OPTIONS, string | boolean | string[]>> = {};
  try {
    values = parseArgs({ args: argv, options: SERVER_OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    errors.push((error as Error).message);
  }
  const str = (key: keyof typeof SERVER_OPTIONS): string | undefined => {
    const value = values[key];
    return typeof value === 'string' ? value : undefined;
  };

  const host = flagOrEnv(str('host'), env.PEERFILL_HOST) ?? '127.0.0.1';
  const port = integer(errors, '--port / PEERFILL_PORT', flagOrEnv(str('port'), env.PEERFILL_PORT), 8080, 0, 65535);
  const dataDir = resolve(cwd, flagOrEnv(str('data-dir'), env.PEERFILL_DATA_DIR) ?? 'data');
  const filesDir = resolve(cwd, flagOrEnv(str('files'), env.PEERFILL_FILES_DIR) ?? resolve(dataDir, 'files'));
  const displayHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const tlsCert = flagOrEnv(str('tls-cert'), env.PEERFILL_TLS_CERT);
  const tlsKey = flagOrEnv(str('tls-key'), env.PEERFILL_TLS_KEY);
  if ((tlsCert === undefined) !== (tlsKey === undefined)) errors.push('--tls-cert and --tls-key (PEERFILL_TLS_CERT, PEERFILL_TLS_KEY) go together: HTTPS needs the certificate and its key');
  const tls = tlsCert !== undefined && tlsKey !== undefined ? { certPath: resolve(cwd, tlsCert), keyPath: resolve(cwd, tlsKey) } : undefined;
  const scheme = tls ? 'https' : 'http';
  const serverUrl = httpUrl(errors, '--server-url / PEERFILL_SERVER_URL', flagOrEnv(str('server-url'), env.PEERFILL_SERVER_URL) ?? `${scheme}://${displayHost}:${port}`);
  const workers = integer(errors, '--workers / PEERFILL_WORKERS', flagOrEnv(str('workers'), env.PEERFILL_WORKERS), 1, 1, 256);
  // With workers, the data plane has its own port (node:cluster shares one listening socket
  // among the workers; the control plane keeps the main port in the primary).
  const dataPortText = flagOrEnv(str('data-port'), env.PEERFILL_DATA_PORT);
  let dataPort: number | undefined;
  if (workers > 1) {
    if (dataPortText === undefined && port === 0) errors.push('--data-port / PEERFILL_DATA_PORT is required with --workers and --port 0');
    dataPort = integer(errors, '--data-port / PEERFILL_DATA_PORT', dataPortText, port + 1, 1, 65535);
    if (dataPort === port) errors.push('--data-port must differ from --port');
  }
  const publicUrl = httpUrl(errors, '--public-url / PEERFILL_PUBLIC_URL', flagOrEnv(str('public-url'), env.PEERFILL_PUBLIC_URL) ?? (dataPort ? `${scheme}://${displayHost}:${dataPort}` : serverUrl));

  let signingKeys: SigningKey[] | undefined;
  if (env.PEERFILL_SIGNING_KEYS !== undefined && env.PEERFILL_SIGNING_KEYS !== '') {
    const parsed = parseSigningKeys(env.PEERFILL_SIGNING_KEYS);
    if (parsed.ok) signingKeys = parsed.keys;
    else errors.push(...parsed.errors.map((message) => `PEERFILL_SIGNING_KEYS: ${message}`));
  }

  let publisherKeys: SigningKey[] | undefined;
  if (env.PEERFILL_PUBLISHER_KEYS !== undefined && env.PEERFILL_PUBLISHER_KEYS !== '') {
    const parsed = parseSigningKeys(env.PEERFILL_PUBLISHER_KEYS);
    if (parsed.ok) publisherKeys = parsed.keys;
    else errors.push(...parsed.errors.map((message) => `PEERFILL_PUBLISHER_KEYS: ${message}`));
  }
  const defaultVisibility = env.PEERFILL_DEFAULT_VISIBILITY || 'public';
  if (defaultVisibility !== 'public' && defaultVisibility !== 'private') errors.push(`PEERFILL_DEFAULT_VISIBILITY must be public or private (got "${defaultVisibility}")`);
  const privatePrefixes = (env.PEERFILL_PRIVATE_PREFIXES ?? '').split(',').map((prefix) => prefix.trim().replace(/^\/+/, '')).filter((prefix) => prefix !== '');

  const egress = integer(errors, '--egress-limit / PEERFILL_EGRESS_BYTES_PER_SECOND', flagOrEnv(str('egress-limit'), env.PEERFILL_EGRESS_BYTES_PER_SECOND), 0, 0, Number.MAX_SAFE_INTEGER);
  const redisUrl = flagOrEnv(str('redis'), env.REDIS_URL);
  if (redisUrl !== undefined) {
    const parsed = parseRedisUrl(redisUrl);
    if (!parsed.ok) errors.push(`--redis / REDIS_URL: ${parsed.error}`);
  }

  let s3: S3Settings | undefined;
  if (env.PEERFILL_S3_BUCKET) {
    s3 = {
      bucket: env.PEERFILL_S3_BUCKET,
      prefix: env.PEERFILL_S3_PREFIX ?? '',
      endpoint: env.PEERFILL_S3_ENDPOINT || undefined,
      region: env.PEERFILL_S3_REGION || env.AWS_REGION || 'us-east-1',
      forcePathStyle: bool(errors, 'PEERFILL_S3_FORCE_PATH_STYLE', env.PEERFILL_S3_FORCE_PATH_STYLE, Boolean(env.PEERFILL_S3_ENDPOINT)),
      presign: bool(errors, 'PEERFILL_S3_PRESIGN', env.PEERFILL_S3_PRESIGN, false),
    };
    if (s3.endpoint !== undefined) httpUrl(errors, 'PEERFILL_S3_ENDPOINT', s3.endpoint);
  }

  const floorText = flagOrEnv(str('speed-floor'), env.PEERFILL_SPEED_FLOOR);
  const speedFloorBitsPerSecond = floorText === undefined || floorText === '' || floorText === '0' ? undefined : parseBitRate(floorText);
  if (floorText !== undefined && floorText !== '' && floorText !== '0' && speedFloorBitsPerSecond === undefined) {
    errors.push(`--speed-floor / PEERFILL_SPEED_FLOOR must be a bit rate such as 50mbit (got ${JSON.stringify(floorText)})`);
  }

  const list = (key: 'stun' | 'turn', envValue: string | undefined): string[] => {
    const value = values[key];
    if (Array.isArray(value)) return value.flatMap((entry) => entry.split(',')).map((entry) => entry.trim()).filter(Boolean);
    return (envValue ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
  };
  const ice: IceSettings = {
    stunUrls: list('stun', env.PEERFILL_STUN_URLS),
    turnUrls: list('turn', env.PEERFILL_TURN_URLS),
    turnSecret: env.PEERFILL_TURN_SECRET === '' ? undefined : env.PEERFILL_TURN_SECRET,
    turnTtlSeconds: integer(errors, '--turn-ttl / PEERFILL_TURN_TTL_SECONDS', flagOrEnv(str('turn-ttl'), env.PEERFILL_TURN_TTL_SECONDS), DEFAULT_TURN_TTL_SECONDS, 60, 7 * 24 * 3600),
  };
  errors.push(...iceSettingsErrors(ice));

  const trustProxyParse = parseTrustProxy(flagOrEnv(str('trust-proxy'), env.PEERFILL_TRUST_PROXY));
  if (!trustProxyParse.ok) errors.push(...trustProxyParse.errors.map((message) => `--trust-proxy / PEERFILL_TRUST_PROXY: ${message}`));

  const logLevel = flagOrEnv(str('log-level'), env.PEERFILL_LOG_LEVEL) ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) errors.push(`--log-level must be one of fatal|error|warn|info|debug|trace|silent`);

  const config: ServerConfig = {
    host,
    port,
    filesDir,
    dataDir,
    publicUrl,
    serverUrl,
    signingKeys,
    publisherKeys,
    visibility: { isPrivateByDefault: defaultVisibility === 'private', privatePrefixes },
    urlTtlSeconds: integer(errors, '--url-ttl / PEERFILL_URL_TTL_SECONDS', flagOrEnv(str('url-ttl'), env.PEERFILL_URL_TTL_SECONDS), 3600, 10, 7 * 24 * 3600),
    egressBytesPerSecond: egress === 0 ? undefined : egress,
    redisUrl,
    s3,
    open: values.open === true || bool(errors, 'PEERFILL_OPEN', env.PEERFILL_OPEN, false),
    announceIntervalSeconds: integer(errors, '--announce-interval / PEERFILL_ANNOUNCE_INTERVAL_SECONDS', flagOrEnv(str('announce-interval'), env.PEERFILL_ANNOUNCE_INTERVAL_SECONDS), 120, 1, 3600),
    speedFloorBitsPerSecond,
    ice,
    rescanIntervalSeconds: integer(errors, '--rescan-interval / PEERFILL_RESCAN_INTERVAL_SECONDS', flagOrEnv(str('rescan-interval'), env.PEERFILL_RESCAN_INTERVAL_SECONDS), 60, 0, 86_400),
    snapshotIntervalMs: integer(errors, 'PEERFILL_SNAPSHOT_INTERVAL_MS', env.PEERFILL_SNAPSHOT_INTERVAL_MS, 30_000, 100, 3_600_000),
    idleTimeoutMs: 1000 * integer(errors, 'PEERFILL_IDLE_TIMEOUT_SECONDS', env.PEERFILL_IDLE_TIMEOUT_SECONDS, 60, 1, 3600),
    sessionCreatesPerSecond: integer(errors, 'PEERFILL_SESSION_RATE_PER_SECOND', env.PEERFILL_SESSION_RATE_PER_SECOND, 5, 1, 1_000_000),
    sessionCreateBurst: integer(errors, 'PEERFILL_SESSION_BURST', env.PEERFILL_SESSION_BURST, 100, 1, 10_000_000),
    trustProxy: trustProxyParse.ok ? trustProxyParse.trust : TRUST_NO_PROXY,
    metricsToken: env.PEERFILL_METRICS_TOKEN || undefined,
    maxSessions: integer(errors, 'PEERFILL_MAX_SESSIONS', env.PEERFILL_MAX_SESSIONS, 1_000_000, 1, 100_000_000),
    requestTimeoutMs: 1000 * integer(errors, 'PEERFILL_REQUEST_TIMEOUT_SECONDS', env.PEERFILL_REQUEST_TIMEOUT_SECONDS, 30, 1, 600),
    workers,
    dataPort,
    tls,
    logLevel,
  };
  if (errors.length > 0) throw new ConfigError(errors);
  return config;
}

/** The origin's part of the server configuration (`serve`, `add`, `sign`). */
export function originConfigFrom(config: ServerConfig): OriginConfig {
  return {
    filesDir: config.s3 ? undefined : config.filesDir,
    s3: config.s3 && { ...config.s3, endpoint: config.s3.endpoint },
    dataDir: config.dataDir,
    publicUrl: config.publicUrl,
    signingKeys: config.signingKeys,
    urlTtlSeconds: config.urlTtlSeconds,
    egressBytesPerSecond: config.egressBytesPerSecond,
    visibility: config.visibility,
    publisherKeys: config.publisherKeys,
  };
}
