/**
 * RFC 9110 §14 Range parsing for one representation of `sizeBytes` bytes, choosing what
 * nginx (ngx_http_range_filter_module) chooses wherever the RFC leaves a choice:
 * - ranges are served as asked: not sorted, not merged; one satisfiable range is a plain
 *   206, several are multipart/byteranges; unsatisfiable ones among satisfiable ones are dropped;
 * - when the ranges add up to more than the representation, or there are more than
 *   `maxRanges` of them, the header is ignored and the whole file is sent (200), as nginx does
 *   with `max_ranges`; this also bounds the cost of a hostile header;
 * - on an empty file a range starting at 0 (or any suffix range) is ignored (200);
 * - spaces inside a range-spec (`bytes=0 - 9`) are tolerated, as nginx does.
 * Where nginx departs from the RFC we follow the RFC, on purpose (test/origin compares):
 * - a Range that does not parse (`bytes=x`, `bytes=5-3`, unknown unit) is ignored (200); nginx
 *   answers 416. RFC 9110 §14.2 lets a server ignore it, and the issue asks for 200;
 * - empty list elements (`bytes=0-1,,3-4`, `bytes=0-1,`) are skipped, as the list rule
 *   (RFC 9110 §5.6.1) requires; nginx answers 416;
 * - positions too large for 64 bits are clamped like any other too-large last-pos; nginx 416s.
 */

/** An inclusive byte range, always within [0, sizeBytes - 1]. */
export interface ByteRange {
  start: number;
  end: number;
}

export type RangeDecision =
  /** No Range, or one that is ignored: send the whole representation (200). */
  | { kind: 'full' }
  /** 206: one range (plain body) or several (multipart/byteranges). */
  | { kind: 'partial'; ranges: ByteRange[] }
  /** 416 with `Content-Range: bytes * /size`. */
  | { kind: 'unsatisfiable' };

export const DEFAULT_MAX_RANGES = 100;

const FULL: RangeDecision = { kind: 'full' };
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' };
/** One range-spec after OWS trimming; nginx-style spaces around the dash. */
const RANGE_SPEC = /^([0-9]*) *- *([0-9]*)$/;
/** Digits beyond this cannot be an offset within a file (2^53): treat them as "infinite". */
const MAX_EXACT_DIGITS = 15;

function toPosition(digits: string): number {
  const trimmed = digits.replace(/^0+(?=[0-9])/, '');
  return trimmed.length > MAX_EXACT_DIGITS ? Number.POSITIVE_INFINITY : Number(trimmed);
}

export function parseRange(header: string | undefined, sizeBytes: number, maxRanges = DEFAULT_MAX_RANGES): RangeDecision {
  if (header === undefined) return FULL;
  if (header.length < 7 || header.slice(0, 6).toLowerCase() !== 'bytes=') return FULL;
  const ranges: ByteRange[] = [];
  let totalBytes = 0;
  let isEmptyFileDeclined = false;
  let elementCount = 0;
  for (const element of header.slice(6).split(',')) {
    const spec = element.replace(/^[ \t]+|[ \t]+$/g, '');
    if (spec === '') continue;
    if (++elementCount > maxRanges * 4) return FULL;
    const match = RANGE_SPEC.exec(spec);
    if (!match) return FULL;
    const [, firstDigits = '', lastDigits = ''] = match;
    if (firstDigits === '' && lastDigits === '') return FULL;
    let start: number;
    let end: number;
    if (firstDigits === '') {
      const suffixLength = toPosition(lastDigits);
      if (sizeBytes === 0) isEmptyFileDeclined = true;
      if (suffixLength === 0 || sizeBytes === 0) continue;
      start = Math.max(0, sizeBytes - suffixLength);
      end = sizeBytes - 1;
    } else {
      start = toPosition(firstDigits);
      const last = lastDigits === '' ? Number.POSITIVE_INFINITY : toPosition(lastDigits);
      // RFC 9110 §14.1.1: last-pos < first-pos makes the whole header invalid.
      if (lastDigits !== '' && last < start) return FULL;
      if (start === 0 && sizeBytes === 0) isEmptyFileDeclined = true;
      if (start >= sizeBytes) continue;
      end = Math.min(last, sizeBytes - 1);
    }
    ranges.push({ start, end });
    totalBytes += end - start + 1;
  }
  if (elementCount === 0) return FULL;
  if (isEmptyFileDeclined) return FULL;
  if (ranges.length === 0) return UNSATISFIABLE;
  if (ranges.length > maxRanges || totalBytes > sizeBytes) return FULL;
  return { kind: 'partial', ranges };
}

/** `bytes 0-99/1000` */
export function contentRange(range: ByteRange, sizeBytes: number): string {
  return `bytes ${range.start}-${range.end}/${sizeBytes}`;
}

/** `bytes * /1000` (no space), for 416. */
export function unsatisfiedContentRange(sizeBytes: number): string {
  return `bytes */${sizeBytes}`;
}
