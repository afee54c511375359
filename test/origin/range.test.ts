import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRange, type RangeDecision } from '../../origin/http/range.ts';

const SIZE = 1000;
const full: RangeDecision = { kind: 'full' };
const unsatisfiable: RangeDecision = { kind: 'unsatisfiable' };
const partial = (...ranges: [number, number][]): RangeDecision => ({ kind: 'partial', ranges: ranges.map(([start, end]) => ({ start, end })) });

describe('parseRange (RFC 9110 §14, nginx where the RFC leaves a choice)', () => {
  const table: [string | undefined, number, RangeDecision][] = [
    [undefined, SIZE, full],
    ['bytes=0-0', SIZE, partial([0, 0])],
    ['bytes=0-499', SIZE, partial([0, 499])],
    ['bytes=500-', SIZE, partial([500, 999])],
    ['bytes=-200', SIZE, partial([800, 999])],
    ['bytes=-5000', SIZE, partial([0, 999])],
    ['bytes=900-5000', SIZE, partial([900, 999])],
    ['bytes=999-999', SIZE, partial([999, 999])],
    ['BYTES=1-2', SIZE, partial([1, 2])],
    ['bytes=0-1,3-4', SIZE, partial([0, 1], [3, 4])],
    ['bytes=3-4,0-1', SIZE, partial([3, 4], [0, 1])],
    ['bytes=0-1, 5-6 ,\t9-9', SIZE, partial([0, 1], [5, 6], [9, 9])],
    ['bytes=0 - 1', SIZE, partial([0, 1])],
    ['bytes=0-1,2000-3000', SIZE, partial([0, 1])],
    ['bytes=0-1,,3-4', SIZE, partial([0, 1], [3, 4])],
    ['bytes=0-1,', SIZE, partial([0, 1])],
    ['bytes=00010-00020', SIZE, partial([10, 20])],
    ['bytes=0-99999999999999999999999', SIZE, partial([0, 999])],
    // Unsatisfiable: 416.
    ['bytes=1000-', SIZE, unsatisfiable],
    ['bytes=1000-2000', SIZE, unsatisfiable],
    ['bytes=-0', SIZE, unsatisfiable],
    ['bytes=5000-,6000-7000', SIZE, unsatisfiable],
    ['bytes=99999999999999999999999-', SIZE, unsatisfiable],
    ['bytes=1-2', 0, unsatisfiable],
    // Ignored: 200 with the whole file.
    ['bytes=0-', 0, full],
    ['bytes=-5', 0, full],
    ['bytes=0-0', 0, full],
    ['bytes=0-,0-', SIZE, full],
    ['bytes=0-600,500-999', SIZE, full],
    ['items=0-1', SIZE, full],
    ['bytes =0-1', SIZE, full],
    ['bytes=', SIZE, full],
    ['bytes=,', SIZE, full],
    ['bytes=x-1', SIZE, full],
    ['bytes=1-x', SIZE, full],
    ['bytes=-', SIZE, full],
    ['bytes=5-3', SIZE, full],
    ['bytes=0-1,5-3', SIZE, full],
    ['bytes=1-2-3', SIZE, full],
    ['bytes=+1-2', SIZE, full],
    ['bytes=0x10-20', SIZE, full],
    ['bytes=1.5-2', SIZE, full],
    ['', SIZE, full],
  ];
  it.each(table)('%j of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it('ignores more ranges than the cap (like nginx max_ranges)', () => {
    const header = `bytes=${Array.from({ length: 5 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`;
    expect(parseRange(header, SIZE, 5).kind).toBe('partial');
    expect(parseRange(header, SIZE, 4)).toEqual(full);
  });
});

describe('parseRange fuzz', () => {
  const spec = fc.oneof(
    fc.tuple(fc.nat(3000), fc.option(fc.nat(3000))).map(([a, b]) => `${a}-${b ?? ''}`),
    fc.nat(3000).map((n) => `-${n}`),
    fc.string({ maxLength: 8 }),
  );
  const header = fc.oneof(
    fc.array(spec, { maxLength: 6 }).map((specs) => `bytes=${specs.join(',')}`),
    fc.string({ maxLength: 40 }),
    fc.stringMatching(/^[bytes=0-9, \t-]{0,40}$/),
  );

  it('never throws and only returns ranges inside the file', () => {
    fc.assert(
      fc.property(header, fc.nat(2500), (value, size) => {
        const decision = parseRange(value, size);
        if (decision.kind !== 'partial') return;
        expect(decision.ranges.length).toBeGreaterThan(0);
        let total = 0;
        for (const range of decision.ranges) {
          expect(Number.isInteger(range.start) && Number.isInteger(range.end)).toBe(true);
          expect(range.start).toBeGreaterThanOrEqual(0);
          expect(range.start).toBeLessThanOrEqual(range.end);
          expect(range.end).toBeLessThan(size);
          total += range.end - range.start + 1;
        }
        expect(total).toBeLessThanOrEqual(size);
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees with a direct reading of one well-formed range', () => {
    fc.assert(
      fc.property(fc.nat(3000), fc.nat(3000), fc.integer({ min: 1, max: 2500 }), (a, b, size) => {
        const [first, last] = a <= b ? [a, b] : [b, a];
        const decision = parseRange(`bytes=${first}-${last}`, size);
        if (first >= size) expect(decision).toEqual(unsatisfiable);
        else expect(decision).toEqual(partial([first, Math.min(last, size - 1)]));
      }),
    );
  });
});
