import { parseRate } from './rate.ts';

export interface LinkShape {
  rate: string;
  delayMs: number;
  jitterMs: number;
  /** Fraction of packets dropped, 0..1. */
  loss: number;
}

// How much the leaf queue holds when there is no netem: ~100 ms at the link rate, like a modest
// access-link buffer, but never less than two 64 KiB GSO packets so that a big skb is not
// dropped outright on a slow link.
const QUEUE_MS = 100;
const MIN_QUEUE_BYTES = 2 * 65_536;

export function needsNetem(shape: LinkShape): boolean {
  return shape.delayMs > 0 || shape.jitterMs > 0 || shape.loss > 0;
}

/**
 * `tc -batch` lines that shape the egress of `dev`: an htb class at `rate` (htb rather than tbf
 * because it accounts a big veth GSO packet against later tokens instead of needing a burst that
 * holds it), with a netem leaf for delay/jitter/loss, or a byte fifo leaf when none is asked.
 */
export function shapingCommands(dev: string, shape: LinkShape): string[] {
  const bitsPerSecond = parseRate(shape.rate);
  const bytesPerSecond = bitsPerSecond / 8;
  // quantum only matters between sibling classes (there are none); set it so htb does not warn.
  const quantumBytes = 60_000;
  const lines = [
    `qdisc add dev ${dev} root handle 1: htb default 10`,
    `class add dev ${dev} parent 1: classid 1:10 htb rate ${bitsPerSecond}bit ceil ${bitsPerSecond}bit quantum ${quantumBytes}`,
  ];
  if (needsNetem(shape)) {
    const jitter = shape.jitterMs > 0 ? ` ${shape.jitterMs}ms` : '';
    const loss = shape.loss > 0 ? ` loss ${(shape.loss * 100).toPrecision(6)}%` : '';
    // netem's limit counts the packets in its delay line too, hence far above a normal queue.
    lines.push(`qdisc add dev ${dev} parent 1:10 handle 10: netem delay ${shape.delayMs}ms${jitter}${loss} limit 100000`);
  } else {
    const limitBytes = Math.max(MIN_QUEUE_BYTES, Math.round((bytesPerSecond * QUEUE_MS) / 1000));
    lines.push(`qdisc add dev ${dev} parent 1:10 handle 10: bfifo limit ${limitBytes}`);
  }
  return lines;
}
