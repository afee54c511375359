import { binaryStringToHex } from '../../protocol/index.ts';

const scratch = Buffer.allocUnsafe(20);

/**
 * A 20-char binary-string id (info_hash, peer_id) as lower-case hex: protocol's
 * binaryStringToHex, done natively for the ids the tracker converts several times per
 * announce. Only for strings the tracker codecs accepted (20 chars, each 0..255), where a
 * latin1 write is exact; anything else goes the checked way.
 */
export function binaryIdToHex(value: string): string {
  if (value.length !== 20) return binaryStringToHex(value);
  scratch.write(value, 0, 'latin1');
  return scratch.toString('hex', 0, 20);
}
