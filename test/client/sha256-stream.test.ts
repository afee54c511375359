import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Sha256Stream } from '../../client/sha256-stream.ts';

describe('Sha256Stream (portable incremental SHA-256)', () => {
  it('matches node:crypto for any bytes split any way', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat({ max: 2000 }), { maxLength: 6 }), (bytes, cuts) => {
        const hasher = new Sha256Stream();
        let last = 0;
        for (const cut of [...cuts].sort((a, b) => a - b)) {
          const at = Math.min(cut, bytes.length);
          hasher.update(bytes.subarray(last, at));
          last = at;
        }
        hasher.update(bytes.subarray(last));
        expect(hasher.digestHex()).toBe(createHash('sha256').update(bytes).digest('hex'));
      }),
      { numRuns: 300 },
    );
  });

  it('hashes the empty input', () => {
    expect(new Sha256Stream().digestHex()).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
