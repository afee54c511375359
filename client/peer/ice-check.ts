import { isTurnUrl, turnUsernameExpiry } from '../../protocol/index.ts';

/** An RTCIceServer, as far as this reads it (an explicit rtcConfig may give `urls` as one string). */
export interface IceServerLike {
  urls: string | readonly string[];
  username?: string | undefined;
}

/**
 * Why a gathered offer or answer has no relay candidate although TURN is configured, in
 * words a person can act on; undefined when it has one, or when no TURN is configured.
 * Without trickle, the SDP holds every candidate ICE gathered, so this is known at once.
 */
export function relayProblem(servers: readonly IceServerLike[] | undefined, sdp: string, nowMs: number): string | undefined {
  const turn = servers?.filter((server) => (typeof server.urls === 'string' ? [server.urls] : server.urls).some(isTurnUrl)) ?? [];
  if (turn.length === 0 || /^a=candidate:.* typ relay/m.test(sdp)) return undefined;
  const expiries = turn.map((server) => turnUsernameExpiry(server.username)).filter((expiry) => expiry !== undefined);
  if (expiries.length > 0 && expiries.every((expiry) => expiry * 1000 <= nowMs)) {
    return `TURN credentials expired at ${new Date(Math.max(...expiries) * 1000).toISOString()}: no relay; peers behind strict NATs are out of reach, HTTP fills in`;
  }
  return 'the TURN server gave no relay (wrong or expired credentials, or unreachable): peers behind strict NATs are out of reach, HTTP fills in';
}
