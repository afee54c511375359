import { describe, expect, it } from 'vitest';
import { parseSigningKeys, signPath, signedPath, verifySignedPath, type SigningKey } from '../../protocol/index.ts';
import { UrlSigner } from '../../origin/signing/signer.ts';

const keys = (spec: string): SigningKey[] => {
  const parsed = parseSigningKeys(spec);
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.keys;
};

const NOW = 1_750_000_000;
const PATH = signedPath('AbC_12-xyz', 'ubuntu 24.04 (amd64).iso');
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const PATH_ALPHABET = `${ALPHABET}%./~!*()' `;

function substitutions(value: string, alphabet: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i++) {
    for (const char of alphabet) if (char !== value[i]) out.push(value.slice(0, i) + char + value.slice(i + 1));
  }
  return out;
}

describe('UrlSigner', () => {
  const signer = new UrlSigner(keys('k2026:new-secret-0123456789abcdef,k2025:old-secret-0123456789abcdef'));

  it('agrees byte for byte with the WebCrypto reference in protocol/', async () => {
    const key = keys('k2026:new-secret-0123456789abcdef')[0]!;
    for (const [method, path, exp] of [['GET', PATH, NOW], ['HEAD', '/d/x/y', 0], ['GET', signedPath('id', 'naïve ☃ ファイル'), 999_999_999_999]] as const) {
      const reference = await signPath(key, method, path, exp);
      expect(signer.sign(method, path, exp)).toEqual(reference);
      expect(signer.verify(method, path, reference, exp)).toBe('ok');
      expect(await verifySignedPath([key], method, path, signer.sign(method, path, exp), exp)).toBe('ok');
    }
  });

  it('verifies until expiry, then answers URL_EXPIRED', () => {
    const query = signer.sign('GET', PATH, NOW + 60);
    expect(signer.verify('GET', PATH, query, NOW)).toBe('ok');
    expect(signer.verify('HEAD', PATH, query, NOW + 60)).toBe('ok');
    expect(signer.verify('GET', PATH, query, NOW + 61)).toBe('PF_ERR_URL_EXPIRED');
  });

  it('reports missing, malformed and unknown-key queries', () => {
    const query = signer.sign('GET', PATH, NOW + 60);
    expect(signer.verify('GET', PATH, {}, NOW)).toBe('PF_ERR_SIGNATURE_MISSING');
    expect(signer.verify('GET', PATH, undefined, NOW)).toBe('PF_ERR_SIGNATURE_MISSING');
    expect(signer.verify('GET', PATH, { ...query, sig: [query.sig, query.sig] }, NOW)).toBe('PF_ERR_SIGNATURE_MISSING');
    expect(signer.verify('GET', PATH, { ...query, kid: 'nobody' }, NOW)).toBe('PF_ERR_UNKNOWN_KEY');
    expect(signer.verify('POST', PATH, query, NOW)).toBe('PF_ERR_SIGNATURE_INVALID');
    expect(signer.verify('GET', PATH, { ...query, exp: `0${query.exp}` }, NOW)).toBe('PF_ERR_SIGNATURE_INVALID');
  });

  it('rejects every single-character tamper of path, exp, kid and sig', () => {
    const query = signer.sign('GET', PATH, NOW + 3600);
    let tampered = 0;
    for (const path of substitutions(PATH, PATH_ALPHABET)) {
      expect(signer.verify('GET', path, query, NOW), path).not.toBe('ok');
      tampered++;
    }
    for (const exp of substitutions(query.exp, '0123456789')) {
      expect(signer.verify('GET', PATH, { ...query, exp }, NOW), exp).not.toBe('ok');
      tampered++;
    }
    for (const kid of substitutions(query.kid, ALPHABET)) {
      expect(signer.verify('GET', PATH, { ...query, kid }, NOW), kid).not.toBe('ok');
      tampered++;
    }
    // Including the last character, whose low bits are padding in base64url.
    for (const sig of substitutions(query.sig, ALPHABET)) {
      expect(signer.verify('GET', PATH, { ...query, sig }, NOW), sig).not.toBe('ok');
      tampered++;
    }
    expect(tampered).toBeGreaterThan(5000);
  });

  it('rotates keys: the first key signs, every key verifies', () => {
    const old = new UrlSigner(keys('k2025:old-secret-0123456789abcdef'));
    const oldQuery = old.sign('GET', PATH, NOW + 60);
    expect(signer.signingKid).toBe('k2026');
    expect(signer.sign('GET', PATH, NOW + 60).kid).toBe('k2026');
    expect(signer.verify('GET', PATH, oldQuery, NOW)).toBe('ok');
    const retired = new UrlSigner(keys('k2026:new-secret-0123456789abcdef'));
    expect(retired.verify('GET', PATH, oldQuery, NOW)).toBe('PF_ERR_UNKNOWN_KEY');
    // Same kid, different secret: invalid, not unknown.
    const forged = new UrlSigner(keys('k2025:another-secret-0123456789')).sign('GET', PATH, NOW + 60);
    expect(signer.verify('GET', PATH, forged, NOW)).toBe('PF_ERR_SIGNATURE_INVALID');
  });

  it('builds a path and query that verify', () => {
    const { pathAndQuery, expiresAtSeconds } = signer.signedPathAndQuery(PATH, NOW, 3600);
    expect(expiresAtSeconds).toBe(NOW + 3600);
    const url = new URL(pathAndQuery, 'http://x');
    expect(url.pathname).toBe(PATH);
    expect(signer.verify('GET', url.pathname, Object.fromEntries(url.searchParams), NOW)).toBe('ok');
  });
});
