/**
 * Server-to-client WebSocket text frames (RFC 6455 section 5.2: FIN, opcode 1, unmasked),
 * several of them in one buffer, so that a socket's frames of one event-loop turn are one
 * write. `ws` would frame each message as two buffers (header and payload) in its own write.
 */
export function encodeTextFrames(texts: readonly string[]): Buffer {
  const lengths: number[] = [];
  let total = 0;
  for (const text of texts) {
    const length = Buffer.byteLength(text, 'utf8');
    lengths.push(length);
    total += headerBytes(length) + length;
  }
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < texts.length; i++) {
    const length = lengths[i]!;
    out[offset] = 0x81;
    if (length < 126) {
      out[offset + 1] = length;
      offset += 2;
    } else if (length < 65_536) {
      out[offset + 1] = 126;
      out.writeUInt16BE(length, offset + 2);
      offset += 4;
    } else {
      out[offset + 1] = 127;
      out.writeBigUInt64BE(BigInt(length), offset + 2);
      offset += 10;
    }
    offset += out.write(texts[i]!, offset, length, 'utf8');
  }
  return out;
}

function headerBytes(payloadBytes: number): number {
  return payloadBytes < 126 ? 2 : payloadBytes < 65_536 ? 4 : 10;
}
