import { PfError } from '../../protocol/index.ts';

/** A parsed HTTP/1.x response head: the status and the headers, names lower-cased. */
export interface ResponseHead {
  status: number;
  /** Whether the connection may carry another request once this body is read. */
  isKeepAlive: boolean;
  headers: Map<string, string>;
  /** Bytes the head took, CRLFCRLF included: what follows is body. */
  headBytes: number;
}

const CRLFCRLF = [13, 10, 13, 10];
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: [^\r\n]*)?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parse a response head from the start of `bytes` (HTTP/1.0 or 1.1, RFC 9112). Returns
 * undefined while the blank line that ends it has not arrived; throws PF_ERR_UPSTREAM for
 * anything that is not a well-formed head. Repeated fields are joined with ", ".
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead | undefined {
  const end = indexOfBlankLine(bytes);
  if (end < 0) return undefined;
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1').split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status) throw new PfError('PF_ERR_UPSTREAM', `malformed HTTP status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!HEADER_NAME.test(name)) throw new PfError('PF_ERR_UPSTREAM', `malformed HTTP header line: ${JSON.stringify(line.slice(0, 80))}`);
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(key);
    headers.set(key, before === undefined ? value : `${before}, ${value}`);
  }
  const connection = (headers.get('connection') ?? '').toLowerCase();
  // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep it.
  const isKeepAlive = status[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  return { status: Number(status[2]), isKeepAlive, headers, headBytes: end + CRLFCRLF.length };
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let index = bytes.indexOf(13); index >= 0 && index + 3 < bytes.length; index = bytes.indexOf(13, index + 1)) {
    if (bytes[index + 1] === 10 && bytes[index + 2] === 13 && bytes[index + 3] === 10) return index;
  }
  return -1;
}
