import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Whether the hop at `address` is a proxy whose X-Forwarded-For is believed. `hop` 0 is the
 * socket's peer, 1 the address that peer reported, and so on leftwards. Same shape as
 * fastify's (proxy-addr's) trust function, so the one predicate serves both.
 */
export type ProxyTrust = (address: string, hop: number) => boolean;

/** The default: no proxy is trusted, X-Forwarded-For is ignored, the client is the socket's peer. */
export const TRUST_NO_PROXY: ProxyTrust = () => false;

/** proxy-addr's (fastify's trustProxy's) named ranges. */
const NAMED_RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

export type TrustProxyParse = { ok: true; trust: ProxyTrust; entries: string[] } | { ok: false; errors: string[] };

/**
 * `--trust-proxy` / PEERFILL_TRUST_PROXY: a comma-separated list of the proxies in front of
 * this server, each an address (`10.0.0.7`, `::1`), a CIDR (`10.0.0.0/8`, `fd00::/8`) or one
 * of proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`). Empty: trust none.
 * Hop counts and "trust everyone" are not offered: either lets any client name its address.
 */
export function parseTrustProxy(text: string | undefined): TrustProxyParse {
  const entries = (text ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) return { ok: true, trust: TRUST_NO_PROXY, entries };
  const errors: string[] = [];
  const list = new BlockList();
  for (const entry of entries.flatMap((entry) => NAMED_RANGES[entry.toLowerCase()] ?? [entry])) {
    const slash = entry.indexOf('/');
    const address = unmapIpv4(slash === -1 ? entry : entry.slice(0, slash));
    const family = isIP(address);
    if (family === 0) {
      errors.push(`"${entry}" is not an address, a CIDR or one of loopback|linklocal|uniquelocal`);
      continue;
    }
    const kind = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(address, kind);
      continue;
    }
    const prefixText = entry.slice(slash + 1);
    const prefix = Number(prefixText);
    if (!/^\d+$/.test(prefixText) || prefix < 1 || prefix > (family === 4 ? 32 : 128)) {
      errors.push(`"${entry}" has no valid prefix length (1 to ${family === 4 ? 32 : 128})`);
      continue;
    }
    list.addSubnet(address, prefix, kind);
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    entries,
    trust: (candidate) => {
      const address = unmapIpv4(candidate);
      const family = isIP(address);
      return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * The X-Forwarded-For entries, nearest hop first (right to left), as @fastify/forwarded
 * reads them: commas separate, spaces and tabs around entries are dropped, empty entries skipped.
 */
function forwardedHops(header: string): string[] {
  return header
    .split(',')
    .map((entry) => entry.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((entry) => entry !== '')
    .reverse();
}

/**
 * The client's address as proxy-addr (fastify's `request.ip` with `trustProxy`) finds it:
 * start at the socket's peer and step left through X-Forwarded-For while the current hop is
 * a trusted proxy; the first untrusted hop (or the leftmost entry) is the client. With no
 * trusted proxy the header is never read, so a client cannot name its own address.
 */
export function clientAddress(socketAddress: string | undefined, forwardedFor: string | string[] | undefined, trust: ProxyTrust): string {
  const peer = socketAddress ?? 'unknown';
  if (trust === TRUST_NO_PROXY || typeof forwardedFor !== 'string') return peer;
  const hops = [peer, ...forwardedHops(forwardedFor)];
  for (let hop = 0; hop < hops.length - 1; hop++) {
    if (!trust(hops[hop]!, hop)) return hops[hop]!;
  }
  return hops[hops.length - 1]!;
}

/** `clientAddress` of an HTTP request or WebSocket upgrade. */
export function clientAddressOf(request: IncomingMessage, trust: ProxyTrust): string {
  return clientAddress(request.socket.remoteAddress, request.headers['x-forwarded-for'], trust);
}

/** The per-address limits' key for an HTTP request or WebSocket upgrade: `addressGroup(clientAddressOf(...))`. */
export function addressGroupOf(request: IncomingMessage, trust: ProxyTrust): AddressGroup {
  return addressGroup(clientAddressOf(request, trust));
}

/** The key every per-client-address limit counts by; only `addressGroup` makes one. */
export type AddressGroup = string & { readonly __addressGroup: unique symbol };

/**
 * What one client is, for per-address limits: an IPv4 address as it is; an IPv4-mapped IPv6
 * address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) as that IPv4 address;
 * any other IPv6 address as its /64, since one home or one VM is given a whole /64 and could
 * otherwise count as 2^64 clients. Anything else (no address) as itself, at most 64 characters.
 */
export function addressGroup(address: string): AddressGroup {
  const unmapped = unmapIpv4(address);
  if (isIP(unmapped) === 4) return unmapped as AddressGroup;
  const hextets = expandIpv6(unmapped);
  if (hextets === undefined) return address.slice(0, 64) as AddressGroup;
  return `${hextets.slice(0, 4).map((hextet) => hextet.toString(16)).join(':')}::/64` as AddressGroup;
}

/** `::ffff:a.b.c.d` (in either spelling) as `a.b.c.d`; anything else unchanged. */
function unmapIpv4(address: string): string {
  const hextets = expandIpv6(address);
  if (hextets === undefined) return address;
  if (hextets.slice(0, 5).some((hextet) => hextet !== 0) || hextets[5] !== 0xffff) return address;
  const [high, low] = [hextets[6]!, hextets[7]!];
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** An IPv6 address (zone id dropped, embedded IPv4 tail allowed) as its eight 16-bit groups; undefined if it is not one. */
function expandIpv6(address: string): number[] | undefined {
  const bare = address.replace(/%.*$/, '');
  if (isIP(bare) !== 6) return undefined;
  let text = bare;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0');
  const groups = [...left, ...zeros, ...right].map((group) => parseInt(group, 16));
  return groups.length === 8 ? groups : undefined;
}
