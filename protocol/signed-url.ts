import { Type, type Static } from '@sinclair/typebox';
import { createCodec } from './codec.ts';
import { base64UrlToBytes, bytesToBase64Url } from './base64url.ts';
import { DIGEST_BASE64URL_PATTERN, KEY_ID_PATTERN, KEY_ID_RE } from './patterns.ts';
import { asBufferSource } from './sha256.ts';

/**
 * Signed data-plane URLs: `/d/<file_id>/<name>?exp=<unix s>&kid=<key id>&sig=<base64url>`.
 *
 * sig = HMAC-SHA256(secret[kid], "GET\n" + path + "\n" + exp + "\n" + kid), where `path` is
 * the URL path exactly as minted (percent-encoded). HEAD is verified as GET: it is the same
 * resource without a body. The query is not part of the signed path, so a CDN can cache
 * by path while every request is still checked. The nginx edge (deploy/nginx) computes the
 * same string; keep the two in step.
 */
export const SIGNED_URL_PREFIX = '/d/';
export const SIGNATURE_BYTES = 32;

export const KeyIdSchema = Type.String({ pattern: KEY_ID_PATTERN });

export const SignedUrlQuerySchema = Type.Object({
  exp: Type.String({ pattern: '^[0-9]{1,12}$' }),
  kid: KeyIdSchema,
  sig: Type.String({ pattern: DIGEST_BASE64URL_PATTERN }),
});
export type SignedUrlQuery = Static<typeof SignedUrlQuerySchema>;
export const signedUrlQueryCodec = createCodec(SignedUrlQuerySchema);

export interface SigningKey {
  kid: string;
  secret: Uint8Array;
}

/** The method a signature covers: HEAD requests are checked as GET. */
export function signedMethod(method: string): string {
  const upper = method.toUpperCase();
  return upper === 'HEAD' ? 'GET' : upper;
}

export function stringToSign(method: string, path: string, expiresAtSeconds: number, kid: string): string {
  return `${signedMethod(method)}\n${path}\n${expiresAtSeconds}\n${kid}`;
}

/** The path a file is served under: `/d/<file_id>/<percent-encoded name>`. */
export function signedPath(fileId: string, name: string): string {
  return `${SIGNED_URL_PREFIX}${encodeURIComponent(fileId)}/${encodeURIComponent(name)}`;
}

/**
 * `kid:secret,kid:secret` (the first key signs, all verify). A secret is used as its UTF-8
 * bytes; at least 16 characters are required. Returns the keys or every problem found.
 */
export function parseSigningKeys(spec: string): { ok: true; keys: SigningKey[] } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const keys: SigningKey[] = [];
  const seen = new Set<string>();
  for (const [index, part] of spec.split(',').entries()) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const colon = trimmed.indexOf(':');
    const kid = colon < 0 ? '' : trimmed.slice(0, colon);
    const secret = colon < 0 ? '' : trimmed.slice(colon + 1);
    if (!KEY_ID_RE.test(kid)) errors.push(`key ${index + 1}: kid must match [A-Za-z0-9_-]{1,32}`);
    else if (seen.has(kid)) errors.push(`key ${index + 1}: duplicate kid "${kid}"`);
    if (secret.length < 16) errors.push(`key ${index + 1}: secret must be at least 16 characters`);
    seen.add(kid);
    keys.push({ kid, secret: new TextEncoder().encode(secret) });
  }
  if (keys.length === 0 && errors.length === 0) errors.push('no keys given');
  return errors.length > 0 ? { ok: false, errors } : { ok: true, keys };
}

async function importKey(secret: Uint8Array, usage: 'sign' | 'verify'): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', asBufferSource(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [usage]);
}

/** WebCrypto signer, usable in every runtime. The origin may use node:crypto for speed; both agree. */
export async function signPath(key: SigningKey, method: string, path: string, expiresAtSeconds: number): Promise<SignedUrlQuery> {
  const data = new TextEncoder().encode(stringToSign(method, path, expiresAtSeconds, key.kid));
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await importKey(key.secret, 'sign'), data));
  return { exp: String(expiresAtSeconds), kid: key.kid, sig: bytesToBase64Url(mac) };
}

export type VerifyOutcome = 'ok' | 'PF_ERR_SIGNATURE_MISSING' | 'PF_ERR_SIGNATURE_INVALID' | 'PF_ERR_URL_EXPIRED' | 'PF_ERR_UNKNOWN_KEY';

/** Constant-time check (WebCrypto HMAC verify) of a path and its query against the known keys. */
export async function verifySignedPath(
  keys: readonly SigningKey[],
  method: string,
  path: string,
  query: unknown,
  nowSeconds: number,
): Promise<VerifyOutcome> {
  const decoded = signedUrlQueryCodec.decode(query);
  if (!decoded.ok) return 'PF_ERR_SIGNATURE_MISSING';
  const { exp, kid, sig } = decoded.value;
  const key = keys.find((candidate) => candidate.kid === kid);
  if (!key) return 'PF_ERR_UNKNOWN_KEY';
  const mac = base64UrlToBytes(sig);
  // One signature, one URL: a leading zero in exp, or other padding bits in the last
  // base64url character, spell the same values differently and count as tampering.
  if (String(Number(exp)) !== exp || bytesToBase64Url(mac) !== sig) return 'PF_ERR_SIGNATURE_INVALID';
  const data = new TextEncoder().encode(stringToSign(method, path, Number(exp), kid));
  const valid = await crypto.subtle.verify('HMAC', await importKey(key.secret, 'verify'), asBufferSource(mac), data);
  if (!valid) return 'PF_ERR_SIGNATURE_INVALID';
  // Expiry is checked after the MAC so an attacker learns nothing from the order of checks.
  return Number(exp) < nowSeconds ? 'PF_ERR_URL_EXPIRED' : 'ok';
}
