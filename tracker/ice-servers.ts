import { createHmac } from 'node:crypto';
import type { IceServer } from '../protocol/index.ts';

export interface IceSettings {
  /** `stun:` URLs handed to every session. */
  stunUrls: readonly string[];
  /** `turn:`/`turns:` URLs; need `turnSecret`. */
  turnUrls: readonly string[];
  /** coturn's `static-auth-secret` (from the environment only; never logged). */
  turnSecret: string | undefined;
  /** How long minted TURN credentials live. */
  turnTtlSeconds: number;
}

export const DEFAULT_TURN_TTL_SECONDS = 3600;

/** Every problem with these settings, in the words of the flags that set them. */
export function iceSettingsErrors(settings: IceSettings): string[] {
  const errors: string[] = [];
  for (const url of settings.stunUrls) if (!/^stuns?:[^\s?#]+$/i.test(url)) errors.push(`--stun: a STUN URL is stun:HOST[:PORT] (got "${url}")`);
  for (const url of settings.turnUrls) if (!/^turns?:[^\s?#]+(\?transport=(udp|tcp))?$/i.test(url)) errors.push(`--turn: a TURN URL is turn:HOST[:PORT][?transport=udp|tcp] or turns:… (got "${url}")`);
  if (settings.stunUrls.length > 8 || settings.turnUrls.length > 8) errors.push('at most 8 STUN and 8 TURN URLs');
  if (settings.turnUrls.length > 0 && settings.turnSecret === undefined) errors.push("--turn needs the TURN server's shared secret in PEERFILL_TURN_SECRET (coturn: use-auth-secret, static-auth-secret)");
  if (settings.turnSecret !== undefined && settings.turnSecret.length < 16) errors.push('PEERFILL_TURN_SECRET must be at least 16 characters');
  if (!Number.isInteger(settings.turnTtlSeconds) || settings.turnTtlSeconds < 60) errors.push(`the TURN credential lifetime must be at least 60 s (got ${settings.turnTtlSeconds})`);
  return errors;
}

/** The TURN REST API credential for a username: base64(HMAC-SHA1(secret, username)). */
export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/**
 * The ICE servers one session is given, or undefined when the publisher configured none
 * (clients then keep their own defaults). TURN credentials name the session and expire
 * after the TTL, and never after the session itself: every session answer mints fresh
 * ones, so a client that keeps talking to the server keeps valid credentials.
 */
export function iceServersFor(settings: IceSettings, sessionId: string, nowMs: number, sessionExpiresAtMs: number): IceServer[] | undefined {
  const servers: IceServer[] = [];
  if (settings.stunUrls.length > 0) servers.push({ urls: [...settings.stunUrls] });
  if (settings.turnUrls.length > 0 && settings.turnSecret !== undefined) {
    const expiresAtMs = Math.min(nowMs + settings.turnTtlSeconds * 1000, sessionExpiresAtMs);
    const username = `${Math.floor(expiresAtMs / 1000)}:${sessionId}`;
    servers.push({ urls: [...settings.turnUrls], username, credential: turnCredential(settings.turnSecret, username) });
  }
  return servers.length > 0 ? servers : undefined;
}
