import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Bitfield,
  binaryStringToHex,
  chooseChunkSize,
  chunkCount,
  computeInfoHash,
  hexToBinaryString,
  parseSigningKeys,
  signPath,
  signedPath,
  trackerRequestCodec,
  verifyManifest,
  verifySignedPath,
  type Manifest,
} from '../../protocol/index.ts';

describe('chooseChunkSize', () => {
  it.each([
    [1024, 256 * 1024],
    [512 * 1024 * 1024, 256 * 1024],
    [1024 ** 3, 512 * 1024],
    [50 * 1000 ** 3, 16 * 1024 * 1024],
  ])('size %d -> chunk %d', (size, expected) => {
    expect(chooseChunkSize(size)).toBe(expected);
  });

  it('keeps every file to a few thousand chunks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50 * 1000 ** 3 }), (size) => {
        const chunkSize = chooseChunkSize(size);
        expect(chunkSize & (chunkSize - 1)).toBe(0);
        expect(chunkCount(size, chunkSize)).toBeLessThanOrEqual(4096);
      }),
    );
  });
});

describe('Bitfield', () => {
  it('round-trips through base64url and rejects spare bits and wrong lengths', () => {
    const bits = new Bitfield(13);
    bits.set(0);
    bits.set(12);
    const copy = Bitfield.fromBase64Url(bits.toBase64Url(), 13);
    expect(copy?.get(0)).toBe(true);
    expect(copy?.get(12)).toBe(true);
    expect(copy?.count()).toBe(2);
    expect(Bitfield.fromBase64Url(bits.toBase64Url(), 30)).toBeUndefined();
    expect(Bitfield.fromBase64Url('__8', 13)).toBeUndefined(); // spare bits set
    expect(Bitfield.fromBase64Url('!!', 13)).toBeUndefined();
  });

  it('reports the contiguous prefix', () => {
    const bits = new Bitfield(10);
    for (const index of [0, 1, 2, 5]) bits.set(index);
    expect(bits.prefixLength()).toBe(3);
  });

  it('full() sets every bit and no spare one', () => {
    for (const length of [0, 1, 8, 13]) {
      const bits = Bitfield.full(length);
      expect([bits.count(), bits.isComplete(), bits.prefixLength()]).toEqual([length, true, length]);
      expect(Bitfield.fromBase64Url(bits.toBase64Url(), length)?.count()).toBe(length);
    }
  });
});

describe('manifest', () => {
  const base: Omit<Manifest, 'info_hash'> = {
    v: 1,
    file_id: 'abc',
    name: 'a.bin',
    size: 1024,
    content_type: 'application/octet-stream',
    chunk_size: 256 * 1024,
    chunks: ['a'.repeat(64)],
    sha256: 'b'.repeat(64),
  };

  it('accepts a manifest whose info_hash matches and rejects one that lies', async () => {
    const manifest = { ...base, info_hash: await computeInfoHash(base) };
    expect((await verifyManifest(manifest)).ok).toBe(true);
    const tampered = { ...manifest, chunks: ['c'.repeat(64)] };
    expect(await verifyManifest(tampered)).toMatchObject({ ok: false });
    expect(await verifyManifest({ ...manifest, chunks: [] })).toMatchObject({ ok: false });
    expect(await verifyManifest('junk')).toMatchObject({ ok: false });
  });
});

describe('signed URLs (WebCrypto reference)', () => {
  const parsed = parseSigningKeys('k1:0123456789abcdef0123,k2:fedcba9876543210fedc');
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const keys = parsed.keys;
  const path = signedPath('abc', 'my file.iso');

  it('verifies, treats HEAD as GET, and rejects expiry, tamper and unknown keys', async () => {
    const query = await signPath(keys[0]!, 'GET', path, 2000);
    expect(await verifySignedPath(keys, 'GET', path, query, 1000)).toBe('ok');
    expect(await verifySignedPath(keys, 'HEAD', path, query, 1000)).toBe('ok');
    expect(await verifySignedPath(keys, 'GET', path, query, 2001)).toBe('PF_ERR_URL_EXPIRED');
    expect(await verifySignedPath(keys, 'GET', path + 'x', query, 1000)).toBe('PF_ERR_SIGNATURE_INVALID');
    expect(await verifySignedPath(keys, 'GET', path, { ...query, exp: '2001' }, 1000)).toBe('PF_ERR_SIGNATURE_INVALID');
    expect(await verifySignedPath(keys, 'GET', path, { ...query, kid: 'k2' }, 1000)).toBe('PF_ERR_SIGNATURE_INVALID');
    expect(await verifySignedPath(keys, 'GET', path, { ...query, kid: 'k9' }, 1000)).toBe('PF_ERR_UNKNOWN_KEY');
    expect(await verifySignedPath(keys, 'GET', path, {}, 1000)).toBe('PF_ERR_SIGNATURE_MISSING');
    // Non-canonical spellings of the same signature or expiry are forgeries.
    const last = query.sig.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[(alphabet.indexOf(last) & ~3) + ((alphabet.indexOf(last) + 1) & 3)]!;
    expect(await verifySignedPath(keys, 'GET', path, { ...query, sig: query.sig.slice(0, -1) + sibling }, 1000)).toBe('PF_ERR_SIGNATURE_INVALID');
    expect(await verifySignedPath(keys, 'GET', path, { ...query, exp: '0' + query.exp }, 1000)).toBe('PF_ERR_SIGNATURE_INVALID');
    // Rotation: a URL signed by the second key still verifies.
    const old = await signPath(keys[1]!, 'GET', path, 2000);
    expect(await verifySignedPath(keys, 'GET', path, old, 1000)).toBe('ok');
  });

  it('lists every problem in a bad key spec', () => {
    const bad = parseSigningKeys('nokey,k1:short,k1:0123456789abcdef');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.length).toBeGreaterThanOrEqual(3);
  });
});

describe('tracker messages', () => {
  it('accepts a stock bittorrent-tracker announce and rejects junk', () => {
    const infoHash = hexToBinaryString('ff'.repeat(20));
    expect(binaryStringToHex(infoHash)).toBe('ff'.repeat(20));
    const announce = {
      action: 'announce',
      info_hash: infoHash,
      peer_id: '-WW0001-123456789012',
      numwant: 5,
      uploaded: 0,
      downloaded: 0,
      left: null,
      event: 'started',
      offers: [{ offer_id: 'x1', offer: { type: 'offer', sdp: 'v=0' } }],
    };
    expect(trackerRequestCodec.decode(announce).ok).toBe(true);
    expect(trackerRequestCodec.decode({ ...announce, info_hash: 'short' }).ok).toBe(false);
    expect(trackerRequestCodec.decode({ ...announce, action: 'nuke' }).ok).toBe(false);
    expect(trackerRequestCodec.decode({ ...announce, info_hash: '\u4e00'.repeat(20) }).ok).toBe(false);
  });
});
