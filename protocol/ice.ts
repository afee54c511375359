import { Type, type Static } from '@sinclair/typebox';

/**
 * ICE servers, as the server hands them to clients with every session answer: the
 * publisher's STUN and TURN (RTCIceServer's shape). TURN credentials follow the TURN REST
 * API that coturn's `use-auth-secret` implements: username `<expiry unix s>:<session id>`,
 * credential base64(HMAC-SHA1(secret, username)).
 */
export const IceServerSchema = Type.Object({
  urls: Type.Array(Type.String({ pattern: '^(stun|stuns|turn|turns):', maxLength: 512 }), { minItems: 1, maxItems: 16 }),
  username: Type.Optional(Type.String({ maxLength: 256 })),
  credential: Type.Optional(Type.String({ maxLength: 256 })),
});
export type IceServer = Static<typeof IceServerSchema>;

export const IceServersSchema = Type.Array(IceServerSchema, { maxItems: 16 });

/** How a peer connection was made: the type of the selected candidate pair's farthest-reaching side. */
export type ConnectionType = 'host' | 'srflx' | 'relay';
export const CONNECTION_TYPES: readonly ConnectionType[] = ['host', 'srflx', 'relay'];

/** Connections by type, as a client reports them on announces (`pf_connections`). */
export const ConnectionCountsSchema = Type.Object(
  {
    host: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    srflx: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    relay: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  },
  { additionalProperties: false },
);
export type ConnectionCounts = Static<typeof ConnectionCountsSchema>;

/** Whether a URL is one of TURN's. */
export const isTurnUrl = (url: string): boolean => /^turns?:/i.test(url);

/** The unix expiry (seconds) a TURN REST username carries, if it is one. */
export function turnUsernameExpiry(username: string | undefined): number | undefined {
  const match = /^(\d{1,12}):/.exec(username ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * The connection type of a selected candidate pair: relay if either side relays, srflx if
 * either side is a NAT's mapping (server- or peer-reflexive), else host.
 */
export function connectionTypeOf(localType: string | undefined, remoteType: string | undefined): ConnectionType {
  const types = [localType, remoteType];
  if (types.includes('relay')) return 'relay';
  if (types.includes('srflx') || types.includes('prflx')) return 'srflx';
  return 'host';
}
