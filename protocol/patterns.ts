/**
 * The protocol's id and token formats, each written once: schemas take the pattern strings
 * (`Type.String({ pattern })`), runtime checks take the RegExps, so the two cannot drift apart.
 */

/** A published file's id (a URL path segment). */
export const FILE_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/** 20 bytes as lower-case hex: an info_hash or a peer_id. */
export const HEX_ID_PATTERN = '^[0-9a-f]{40}$';
/** A SHA-256 digest as lower-case hex. */
export const SHA256_HEX_PATTERN = '^[0-9a-f]{64}$';
/** base64url without padding, any length. */
export const BASE64URL_PATTERN = '^[A-Za-z0-9_-]*$';
/** 32 bytes as base64url without padding: an HMAC-SHA256 signature or proof, a session token. */
export const DIGEST_BASE64URL_PATTERN = '^[A-Za-z0-9_-]{43}$';
/** A download session's id. */
export const SESSION_ID_PATTERN = '^[A-Za-z0-9_-]{16,64}$';
/** A signing key's id (`kid`). */
export const KEY_ID_PATTERN = '^[A-Za-z0-9_-]{1,32}$';

export const FILE_ID_RE = new RegExp(FILE_ID_PATTERN);
export const HEX_ID_RE = new RegExp(HEX_ID_PATTERN);
export const BASE64URL_RE = new RegExp(BASE64URL_PATTERN);
export const DIGEST_BASE64URL_RE = new RegExp(DIGEST_BASE64URL_PATTERN);
export const SESSION_ID_RE = new RegExp(SESSION_ID_PATTERN);
export const KEY_ID_RE = new RegExp(KEY_ID_PATTERN);
