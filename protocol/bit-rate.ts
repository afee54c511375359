/**
 * Bit rates as `tc` writes them: `50mbit`, `1.5gbit`, `800kbit`, `64000bit` (1 kbit = 1000 bit).
 * The unit is required, and byte forms (`kbps`, which tc reads as kilobytes) are refused, so
 * that `20mbps` cannot silently mean 160 Mbit/s.
 */
const UNITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/** Bits per second, or undefined when `text` is not a rate (the caller names the setting in its error). */
export function parseBitRate(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$/i.exec(text);
  if (!match) return undefined;
  const bits = Number(match[1]) * UNITS[match[2]!.toLowerCase()]!;
  return Number.isFinite(bits) && bits >= 1 ? Math.round(bits) : undefined;
}

/** `50000000` -> `50 Mbit/s`, for people. */
export function formatBitRate(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e9) return `${+(bitsPerSecond / 1e9).toFixed(2)} Gbit/s`;
  if (bitsPerSecond >= 1e6) return `${+(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
  if (bitsPerSecond >= 1e3) return `${+(bitsPerSecond / 1e3).toFixed(1)} kbit/s`;
  return `${Math.round(bitsPerSecond)} bit/s`;
}
