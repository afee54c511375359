/** Hex and the tracker's "binary strings", in every runtime (no `node:` imports, no Buffer). */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += HEX[byte];
  return out;
}

export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('invalid hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** 40-hex info_hash -> the 20-char "binary string" the WebTorrent tracker protocol carries. */
export function hexToBinaryString(hex: string): string {
  return String.fromCharCode(...hexToBytes(hex));
}

/** The WebTorrent tracker's 20-char binary string -> lower-case hex. */
export function binaryStringToHex(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code > 0xff) throw new TypeError('not a binary string');
    out += HEX[code];
  }
  return out;
}
