import { randomBytes } from 'node:crypto';
import { contentRange, type ByteRange } from './range.ts';

/** One part's header and the range it frames. */
export interface MultipartPart {
  header: Buffer;
  range: ByteRange;
}

export interface MultipartLayout {
  contentType: string;
  parts: MultipartPart[];
  trailer: Buffer;
  /** Exact body length: headers, data and trailer. */
  contentLength: number;
}

let counter = 0;
const processTag = randomBytes(4).toString('hex');

/**
 * multipart/byteranges (RFC 9110 §14.6) laid out as nginx does: each part opens with
 * CRLF "--boundary" CRLF, Content-Type and Content-Range, a blank line, then the bytes;
 * the body closes with CRLF "--boundary--" CRLF.
 */
export function multipartLayout(ranges: readonly ByteRange[], sizeBytes: number, partContentType: string): MultipartLayout {
  counter = (counter + 1) % 1e12;
  const boundary = `pf${processTag}${counter.toString().padStart(12, '0')}`;
  let contentLength = 0;
  const parts = ranges.map((range) => {
    const header = Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${partContentType}\r\nContent-Range: ${contentRange(range, sizeBytes)}\r\n\r\n`, 'latin1');
    contentLength += header.length + (range.end - range.start + 1);
    return { header, range };
  });
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  contentLength += trailer.length;
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, trailer, contentLength };
}
