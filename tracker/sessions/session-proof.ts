import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Proof of a session on the tracker socket, where no bearer token travels:
 * base64url(HMAC-SHA256(key = SHA-256(session_token), "peerfill-announce\n" + session_id + "\n" + info_hash)).
 * The server keeps only SHA-256(token), so it can check and mint the proof; it is handed to
 * the token's holder in every authorized session answer (`announce_proof`). It names one
 * session and one swarm, so it opens nothing else, and it does not reveal the token.
 */
export function announceProof(tokenSha256Hex: string, sessionId: string, infoHash: string): string {
  return createHmac('sha256', Buffer.from(tokenSha256Hex, 'hex')).update(`peerfill-announce\n${sessionId}\n${infoHash}`).digest('base64url');
}

/** Constant-time check of a presented proof. */
export function isAnnounceProofValid(tokenSha256Hex: string, sessionId: string, infoHash: string, presented: string): boolean {
  const expected = Buffer.from(announceProof(tokenSha256Hex, sessionId, infoHash));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function tokenSha256(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
