import { parseBitRate } from '../../protocol/index.ts';
import { LabError } from './lab-error.ts';

/** '100mbit' -> 100_000_000 (bits per second), as protocol's parseBitRate reads it; junk is a LabError. */
export function parseRate(rate: string): number {
  const bitsPerSecond = parseBitRate(rate);
  if (bitsPerSecond === undefined || bitsPerSecond < 8) {
    throw new LabError('PF_ERR_LAB_SPEC', `bad rate ${JSON.stringify(rate)}: expected a number and one of bit, kbit, mbit, gbit (e.g. '20mbit'), at least 8bit`);
  }
  return bitsPerSecond;
}
