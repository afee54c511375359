/**
 * RFC 9110 §13 preconditions for GET/HEAD of a file with a strong ETag and a Last-Modified
 * date, in the RFC's order: If-Match, else If-Unmodified-Since (412); If-None-Match, else
 * If-Modified-Since (304). If-Range decides whether Range applies at all.
 */
export interface Validators {
  /** Strong, quoted. */
  etag: string;
  mtimeMs: number;
}

export type PreconditionOutcome = 'proceed' | 'not-modified' | 'failed';

function seconds(mtimeMs: number): number {
  return Math.floor(mtimeMs / 1000);
}

/** HTTP-date (IMF-fixdate, RFC 850 or asctime) to Unix seconds, or undefined. */
export function parseHttpDate(value: string): number | undefined {
  if (!/^[A-Za-z]{3}/.test(value.trim())) return undefined;
  // asctime dates carry no zone; HTTP dates are always GMT.
  const ms = Date.parse(value.includes('GMT') ? value : `${value} GMT`);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

export function httpDate(mtimeMs: number): string {
  return new Date(seconds(mtimeMs) * 1000).toUTCString();
}

function entityTags(header: string): string[] {
  return header
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

export function evaluatePreconditions(headers: Record<string, string | string[] | undefined>, validators: Validators): PreconditionOutcome {
  const ifMatch = single(headers['if-match']);
  if (ifMatch !== undefined) {
    const tags = entityTags(ifMatch);
    // Strong comparison: a weak tag never matches.
    if (!tags.includes('*') && !tags.includes(validators.etag)) return 'failed';
  } else {
    const ifUnmodifiedSince = single(headers['if-unmodified-since']);
    const date = ifUnmodifiedSince === undefined ? undefined : parseHttpDate(ifUnmodifiedSince);
    if (date !== undefined && seconds(validators.mtimeMs) > date) return 'failed';
  }
  const ifNoneMatch = single(headers['if-none-match']);
  if (ifNoneMatch !== undefined) {
    const tags = entityTags(ifNoneMatch);
    // Weak comparison, as RFC 9110 §13.1.2 says for If-None-Match.
    if (tags.includes('*') || tags.some((tag) => opaque(tag) === validators.etag)) return 'not-modified';
    return 'proceed';
  }
  const ifModifiedSince = single(headers['if-modified-since']);
  const date = ifModifiedSince === undefined ? undefined : parseHttpDate(ifModifiedSince);
  if (date !== undefined && seconds(validators.mtimeMs) <= date) return 'not-modified';
  return 'proceed';
}

/**
 * If-Range (RFC 9110 §13.1.5): an entity-tag must equal ours by strong comparison; a date
 * must equal Last-Modified exactly (as nginx compares it). Anything else: send the whole file.
 */
export function ifRangeAllowsRange(ifRange: string | string[] | undefined, validators: Validators): boolean {
  const value = single(ifRange)?.trim();
  if (value === undefined) return true;
  if (value.endsWith('"')) return value === validators.etag;
  const date = parseHttpDate(value);
  return date !== undefined && date === seconds(validators.mtimeMs);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
