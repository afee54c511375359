import type { Logger } from 'pino';

/**
 * Warnings that a hostile client can cause at will (refused frames): at most one line per
 * reason per `intervalMs`, carrying how many were left out since the last one. Every
 * occurrence is still counted in the metrics by the caller.
 */
export class SampledWarn {
  private readonly reasons = new Map<string, { loggedAtMs: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(reason: string, fields: Record<string, unknown>, message: string): boolean {
    const nowMs = this.now();
    const state = this.reasons.get(reason);
    if (state && nowMs - state.loggedAtMs < this.intervalMs) {
      state.suppressed++;
      return false;
    }
    this.logger.warn({ ...fields, reason, suppressed: state?.suppressed ?? 0 }, message);
    this.reasons.set(reason, { loggedAtMs: nowMs, suppressed: 0 });
    return true;
  }
}
