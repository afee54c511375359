import { base64UrlToBytes, bytesToBase64Url } from './base64url.ts';

/**
 * A fixed-length set of chunk indexes, MSB-first per byte as in BitTorrent's bitfield
 * message. Serialised as base64url for JSON (session API, tracker announces, state files).
 */
export class Bitfield {
  readonly length: number;
  readonly bytes: Uint8Array;

  constructor(length: number, bytes?: Uint8Array) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError('bitfield length must be a non-negative integer');
    this.length = length;
    const byteLength = Math.ceil(length / 8);
    this.bytes = new Uint8Array(byteLength);
    if (bytes) this.bytes.set(bytes.subarray(0, byteLength));
    this.clearSpareBits();
  }

  /** Decode base64url; returns undefined if it is not a bitfield of exactly `length` bits. */
  static fromBase64Url(value: string, length: number): Bitfield | undefined {
    let bytes: Uint8Array;
    try {
      bytes = base64UrlToBytes(value);
    } catch {
      return undefined;
    }
    if (bytes.length !== Math.ceil(length / 8)) return undefined;
    const spareBits = bytes.length * 8 - length;
    if (spareBits > 0 && ((bytes[bytes.length - 1] ?? 0) & ((1 << spareBits) - 1)) !== 0) return undefined;
    return new Bitfield(length, bytes);
  }

  /** Every one of `length` bits set: a complete file. */
  static full(length: number): Bitfield {
    const bitfield = new Bitfield(length);
    bitfield.bytes.fill(0xff);
    bitfield.clearSpareBits();
    return bitfield;
  }

  get(index: number): boolean {
    if (index < 0 || index >= this.length) return false;
    return ((this.bytes[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0;
  }

  set(index: number, value = true): void {
    if (index < 0 || index >= this.length) throw new RangeError(`bit ${index} out of range`);
    const byteIndex = index >> 3;
    const mask = 0x80 >> (index & 7);
    const current = this.bytes[byteIndex] ?? 0;
    this.bytes[byteIndex] = value ? current | mask : current & ~mask;
  }

  count(): number {
    let total = 0;
    for (let byte of this.bytes) {
      while (byte) {
        byte &= byte - 1;
        total++;
      }
    }
    return total;
  }

  isComplete(): boolean {
    return this.count() === this.length;
  }

  /** Number of leading set bits: the contiguous verified prefix, in chunks. */
  prefixLength(): number {
    let index = 0;
    while (index < this.length && this.get(index)) index++;
    return index;
  }

  toBase64Url(): string {
    return bytesToBase64Url(this.bytes);
  }

  clone(): Bitfield {
    return new Bitfield(this.length, this.bytes);
  }

  private clearSpareBits(): void {
    const spareBits = this.bytes.length * 8 - this.length;
    if (spareBits > 0) this.bytes[this.bytes.length - 1]! &= 0xff << spareBits;
  }
}
