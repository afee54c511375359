/**
 * Where the Redis store connects: one server, or a Redis Cluster through seed nodes.
 *
 * Accepted forms (`--redis` / REDIS_URL):
 * - `redis://[user:password@]host:port[/db]` or `rediss://...`: one server.
 * - `redis+cluster://[user:password@]host:port,host:port,...` (or `rediss+cluster://` for TLS):
 *   a cluster, the primary form. Any node will do as a seed; give a few in case one is down.
 * - `redis://host:port,redis://host:port,...`: a cluster too, as comma-separated seed URLs.
 */
export interface RedisSeed {
  host: string;
  port: number;
}

export type RedisTarget =
  | { mode: 'single'; url: string }
  | { mode: 'cluster'; seeds: RedisSeed[]; username?: string; password?: string; tls: boolean };

export type ParsedRedisUrl = { ok: true; target: RedisTarget } | { ok: false; error: string };

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;
const SINGLE_SCHEME = /^rediss?:\/\//i;

function fail(error: string): ParsedRedisUrl {
  return { ok: false, error };
}

/** A URL as it may appear in an error message: without its password. */
function redact(text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//***@');
}

/** One `host:port` of a cluster list; IPv6 hosts in brackets. */
function parseSeed(text: string): RedisSeed | string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@]+):(\d{1,5})$/.exec(text);
  if (!match) return `"${text}" is not host:port`;
  const port = Number(match[2]);
  if (port < 1 || port > 65_535) return `port ${match[2]} of "${text}" is out of range`;
  const host = match[1]!.startsWith('[') ? match[1]!.slice(1, -1) : match[1]!;
  return { host, port };
}

function decodeCredential(text: string): string | undefined {
  if (text === '') return undefined;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function parseClusterForm(text: string, scheme: string): ParsedRedisUrl {
  let rest = text.slice(text.indexOf('://') + 3);
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const credentials = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = credentials.indexOf(':');
    username = decodeCredential(colon >= 0 ? credentials.slice(0, colon) : credentials);
    password = colon >= 0 ? decodeCredential(credentials.slice(colon + 1)) : undefined;
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.includes('/')) return fail('a redis+cluster:// URL takes no path or database number (a cluster has only database 0)');
  const entries = rest.split(',').map((entry) => entry.trim());
  if (entries.length === 0 || entries.some((entry) => entry === '')) return fail('a redis+cluster:// URL needs host:port[,host:port...] with no empty entry');
  const seeds: RedisSeed[] = [];
  for (const entry of entries) {
    const seed = parseSeed(entry);
    if (typeof seed === 'string') return fail(seed);
    seeds.push(seed);
  }
  return { ok: true, target: { mode: 'cluster', seeds, username, password, tls: scheme.toLowerCase() === 'rediss' } };
}

function parseSeedUrls(entries: string[]): ParsedRedisUrl {
  const seeds: RedisSeed[] = [];
  let tls: boolean | undefined;
  let username: string | undefined;
  let password: string | undefined;
  for (const entry of entries) {
    if (!SINGLE_SCHEME.test(entry)) return fail(`seed "${redact(entry)}" is not a redis:// or rediss:// URL`);
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      return fail(`seed "${redact(entry)}" is not a valid URL`);
    }
    if (url.port === '' || url.hostname === '') return fail(`seed "${redact(entry)}" needs host:port`);
    if (url.pathname !== '' && url.pathname !== '/') return fail(`seed "${redact(entry)}" has a path or database number; a cluster has only database 0`);
    const isTls = url.protocol === 'rediss:';
    if (tls !== undefined && tls !== isTls) return fail('cluster seeds must all be redis:// or all rediss://');
    tls = isTls;
    username ??= decodeCredential(url.username);
    password ??= decodeCredential(url.password);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    seeds.push({ host, port: Number(url.port) });
  }
  return { ok: true, target: { mode: 'cluster', seeds, username, password, tls: tls ?? false } };
}

export function parseRedisUrl(input: string): ParsedRedisUrl {
  const text = input.trim();
  if (text === '') return fail('it is empty');
  const cluster = CLUSTER_SCHEME.exec(text);
  if (cluster) return parseClusterForm(text, cluster[1]!);
  if (!SINGLE_SCHEME.test(text)) return fail('it must be redis://host:port, rediss://host:port, redis+cluster://host:port,host:port or comma-separated redis:// seed URLs');
  const entries = text.split(',').map((entry) => entry.trim());
  if (entries.some((entry) => entry === '')) return fail('comma-separated seed URLs need no empty entry');
  if (entries.length > 1) return parseSeedUrls(entries);
  try {
    new URL(text);
  } catch {
    return fail(`"${redact(text)}" is not a valid URL`);
  }
  return { ok: true, target: { mode: 'single', url: text } };
}
