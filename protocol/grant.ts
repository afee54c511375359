import { Type, type Static } from '@sinclair/typebox';
import { createCodec, parseJson } from './codec.ts';
import { base64UrlToBytes, bytesToBase64Url } from './base64url.ts';
import { asBufferSource } from './sha256.ts';
import { FileIdSchema } from './manifest.ts';
import { KeyIdSchema, type SigningKey } from './signed-url.ts';

/**
 * Publisher grants: the right of one user to one private file until a time, minted by the
 * publisher's app (or `peerfill grant`) with a publisher key and handed to the user's
 * browser, which presents it to `POST /downloads` (`grant`) and `GET /files/:id/manifest`
 * (`x-peerfill-grant` header).
 *
 *   grant   = base64url(payload) "." base64url(HMAC-SHA256(secret[kid], "peerfill-grant\n" + base64url(payload)))
 *   payload = {"k": kid, "f": file_id, "u": user, "e": expiry in Unix seconds}   (JSON, UTF-8)
 *
 * Publisher keys (PEERFILL_PUBLISHER_KEYS, `kid:secret,...`) also serve as API keys for a
 * publisher's backend (`x-peerfill-key: <secret>`). Several keys at once allow rotation.
 * Every check is constant-time (WebCrypto HMAC verify), as signed URLs are.
 */
export const GrantUserSchema = Type.String({ pattern: '^[A-Za-z0-9_.:@+-]{1,128}$' });
/** What `peerfill grant` checks its arguments with. */
export const grantUserCodec = createCodec(GrantUserSchema);
export const grantFileIdCodec = createCodec(FileIdSchema);
export const GrantSchema = Type.String({ pattern: '^[A-Za-z0-9_-]{16,1024}\\.[A-Za-z0-9_-]{43}$' });
const GrantPayloadSchema = Type.Object({ k: KeyIdSchema, f: FileIdSchema, u: GrantUserSchema, e: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
export type GrantPayload = Static<typeof GrantPayloadSchema>;
const payloadCodec = createCodec(GrantPayloadSchema);

export type GrantCheck = { ok: true; user: string; kid: string } | { ok: false; reason: 'malformed' | 'unknown_key' | 'bad_signature' | 'expired' | 'other_file' };

const encoder = new TextEncoder();

async function hmacKey(secret: Uint8Array, usage: 'sign' | 'verify'): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', asBufferSource(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [usage]);
}

export async function mintGrant(key: SigningKey, grant: { fileId: string; user: string; expiresAtSeconds: number }): Promise<string> {
  const payload: GrantPayload = { k: key.kid, f: grant.fileId, u: grant.user, e: grant.expiresAtSeconds };
  const encoded = bytesToBase64Url(encoder.encode(JSON.stringify(payload)));
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await hmacKey(key.secret, 'sign'), encoder.encode(`peerfill-grant\n${encoded}`)));
  return `${encoded}.${bytesToBase64Url(mac)}`;
}

/** Whether `grant` lets its user at `fileId` now. The MAC is checked before expiry and file. */
export async function verifyGrant(keys: readonly SigningKey[], grant: string, fileId: string, nowSeconds: number): Promise<GrantCheck> {
  const dot = grant.indexOf('.');
  if (dot <= 0 || grant.length > 1100) return { ok: false, reason: 'malformed' };
  const encoded = grant.slice(0, dot);
  const parsed = parseJson(new TextDecoder('utf-8', { fatal: false }).decode(base64UrlToBytes(encoded)));
  const payload = parsed.ok ? payloadCodec.decode(parsed.value) : parsed;
  if (!payload.ok) return { ok: false, reason: 'malformed' };
  const key = keys.find((candidate) => candidate.kid === payload.value.k);
  if (!key) return { ok: false, reason: 'unknown_key' };
  const mac = base64UrlToBytes(grant.slice(dot + 1));
  if (mac.length !== 32) return { ok: false, reason: 'malformed' };
  const valid = await crypto.subtle.verify('HMAC', await hmacKey(key.secret, 'verify'), asBufferSource(mac), encoder.encode(`peerfill-grant\n${encoded}`));
  if (!valid) return { ok: false, reason: 'bad_signature' };
  if (payload.value.e < nowSeconds) return { ok: false, reason: 'expired' };
  if (payload.value.f !== fileId) return { ok: false, reason: 'other_file' };
  return { ok: true, user: payload.value.u, kid: key.kid };
}

/**
 * The publisher key whose secret `presented` is, compared in constant time: each key's MAC
 * of a fixed message under the presented bytes against the same under its secret (equal
 * length, verify() compares without shortcuts), and every key is tried.
 */
export async function apiKeyId(keys: readonly SigningKey[], presented: string): Promise<string | undefined> {
  if (presented.length === 0 || presented.length > 256) return undefined;
  const message = encoder.encode('peerfill-api-key');
  const presentedMac = new Uint8Array(await crypto.subtle.sign('HMAC', await hmacKey(encoder.encode(presented), 'sign'), message));
  let found: string | undefined;
  for (const key of keys) {
    const valid = await crypto.subtle.verify('HMAC', await hmacKey(key.secret, 'verify'), asBufferSource(presentedMac), message);
    if (valid && found === undefined) found = key.kid;
  }
  return found;
}

/** What a caller presented for a private file. */
export interface PublisherCredentials {
  /** `x-peerfill-key`: a publisher key's secret (server to server). */
  apiKey?: string;
  /** A grant (`x-peerfill-grant` header, or `grant` in the POST /downloads body). */
  grant?: string;
}

export type AccessCheck = { ok: true; kid: string; user: string | undefined } | { ok: false; hasCredentials: boolean };

/** Whether the credentials open the private file `fileId` now: an API key, or a grant for that file. */
export async function checkPublisherAccess(keys: readonly SigningKey[], credentials: PublisherCredentials, fileId: string, nowSeconds: number): Promise<AccessCheck> {
  if (credentials.apiKey !== undefined) {
    const kid = await apiKeyId(keys, credentials.apiKey);
    if (kid !== undefined) return { ok: true, kid, user: undefined };
  }
  if (credentials.grant !== undefined) {
    const checked = await verifyGrant(keys, credentials.grant, fileId, nowSeconds);
    if (checked.ok) return { ok: true, kid: checked.kid, user: checked.user };
  }
  return { ok: false, hasCredentials: credentials.apiKey !== undefined || credentials.grant !== undefined };
}

/** The credentials of an HTTP request's headers (a single string each, or none). */
export function publisherCredentialsOf(headers: Record<string, string | string[] | undefined>): PublisherCredentials {
  const one = (name: string) => {
    const value = headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  return { apiKey: one('x-peerfill-key'), grant: one('x-peerfill-grant') };
}
