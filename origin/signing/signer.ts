import { createHmac, timingSafeEqual } from 'node:crypto';
import { PfError, signedUrlQueryCodec, stringToSign, type SignedUrlQuery, type SigningKey, type VerifyOutcome } from '../../protocol/index.ts';

/** Only the canonical spelling of a number verifies: `0123` is not `123`. */
const CANONICAL_EXP = /^(0|[1-9][0-9]{0,11})$/;

/**
 * HMAC-SHA256 URL signer on node:crypto. It computes protocol/signed-url.ts's string to sign
 * byte for byte (the tests check it against the WebCrypto reference). The first key signs,
 * every key verifies (rotation). Comparison is constant-time over the base64url text, so a
 * signature with different spare bits in its last character does not verify either.
 */
export class UrlSigner {
  private readonly keys: ReadonlyMap<string, Buffer>;
  private readonly signingKey: SigningKey;

  constructor(keys: readonly SigningKey[]) {
    const first = keys[0];
    if (!first) throw new PfError('PF_ERR_CONFIG', 'at least one signing key is required');
    this.signingKey = first;
    this.keys = new Map(keys.map((key) => [key.kid, Buffer.from(key.secret)]));
  }

  get signingKid(): string {
    return this.signingKey.kid;
  }

  private mac(secret: Buffer, method: string, path: string, expiresAtSeconds: number, kid: string): string {
    return createHmac('sha256', secret).update(stringToSign(method, path, expiresAtSeconds, kid)).digest('base64url');
  }

  sign(method: string, path: string, expiresAtSeconds: number): SignedUrlQuery {
    const { kid } = this.signingKey;
    const secret = this.keys.get(kid)!;
    return { exp: String(expiresAtSeconds), kid, sig: this.mac(secret, method, path, expiresAtSeconds, kid) };
  }

  /** `path?exp=&kid=&sig=` for a path, valid for `ttlSeconds` from `nowSeconds`. */
  signedPathAndQuery(path: string, nowSeconds: number, ttlSeconds: number): { pathAndQuery: string; expiresAtSeconds: number } {
    const expiresAtSeconds = nowSeconds + ttlSeconds;
    const { exp, kid, sig } = this.sign('GET', path, expiresAtSeconds);
    return { pathAndQuery: `${path}?exp=${exp}&kid=${kid}&sig=${sig}`, expiresAtSeconds };
  }

  /** Same outcomes, in the same order, as protocol's verifySignedPath. */
  verify(method: string, path: string, query: unknown, nowSeconds: number): VerifyOutcome {
    const decoded = signedUrlQueryCodec.decode(query);
    if (!decoded.ok) return 'PF_ERR_SIGNATURE_MISSING';
    const { exp, kid, sig } = decoded.value;
    const secret = this.keys.get(kid);
    if (!secret) return 'PF_ERR_UNKNOWN_KEY';
    if (!CANONICAL_EXP.test(exp)) return 'PF_ERR_SIGNATURE_INVALID';
    const expiresAtSeconds = Number(exp);
    const expected = Buffer.from(this.mac(secret, method, path, expiresAtSeconds, kid), 'latin1');
    const given = Buffer.from(sig, 'latin1');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'PF_ERR_SIGNATURE_INVALID';
    // Expiry after the MAC, as in protocol/: the order of checks reveals nothing to a forger.
    return expiresAtSeconds < nowSeconds ? 'PF_ERR_URL_EXPIRED' : 'ok';
  }
}
