import { ERROR_CODES, isErrorCode } from '../../protocol/index.ts';

/**
 * Why an answer is outside the error contract (`{"error":{"code","message"}}` with a
 * registered code whose status is the answer's status), or undefined when it is inside.
 */
export function contractViolation(status: number, body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `status ${status}: body is not JSON: ${body.slice(0, 80)}`;
  }
  if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return `status ${status}: no error object: ${body.slice(0, 80)}`;
  const error = parsed.error;
  if (typeof error !== 'object' || error === null || !('code' in error) || !('message' in error)) return `status ${status}: error lacks code or message`;
  if (!isErrorCode(error.code)) return `status ${status}: unknown code ${String(error.code)}`;
  if (typeof error.message !== 'string') return `status ${status}: message is not a string`;
  if (ERROR_CODES[error.code].status !== status) return `status ${status} does not match ${error.code} (${ERROR_CODES[error.code].status})`;
  return undefined;
}

/** A raw HTTP/1.1 answer split into status, headers and body. */
export function parseRawResponse(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = split < 0 ? raw : raw.slice(0, split);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: split < 0 ? '' : raw.slice(split + 4) };
}
