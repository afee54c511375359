import type SimplePeer from 'simple-peer';
import { connectionTypeOf, type ConnectionType } from '../../protocol/index.ts';

/** One getStats() report, as far as we read it: wire data until checked here. */
type Report = Record<string, unknown>;

const isReport = (value: unknown): value is Report => typeof value === 'object' && value !== null;
const text = (report: Report | undefined, key: string): string | undefined => {
  const value = report?.[key];
  return typeof value === 'string' ? value : undefined;
};

/**
 * How a connection was made, from its getStats() reports: the selected candidate pair
 * (the transport's `selectedCandidatePairId`, else a pair marked selected or nominated and
 * succeeded) and the types of its two candidates. Undefined when the reports do not say.
 */
export function selectedConnectionType(reports: readonly unknown[]): ConnectionType | undefined {
  const byId = new Map<string, Report>();
  for (const report of reports) if (isReport(report) && typeof report.id === 'string') byId.set(report.id, report);
  let pair: Report | undefined;
  for (const report of byId.values()) {
    const selectedId = report.type === 'transport' ? text(report, 'selectedCandidatePairId') : undefined;
    if (selectedId !== undefined && byId.has(selectedId)) pair = byId.get(selectedId);
  }
  if (!pair) {
    for (const report of byId.values()) {
      const isPair = report.type === 'candidate-pair' || report.type === 'candidatepair';
      if (isPair && (report.selected === true || (report.nominated === true && report.state === 'succeeded'))) pair = report;
    }
  }
  if (!pair) return undefined;
  const local = byId.get(text(pair, 'localCandidateId') ?? '');
  const remote = byId.get(text(pair, 'remoteCandidateId') ?? '');
  if (!local && !remote) return undefined;
  return connectionTypeOf(text(local, 'candidateType'), text(remote, 'candidateType'));
}

/** simple-peer has getStats(cb); its type declarations do not. */
type WithStats = { getStats?: unknown };

/** The connection type of a connected simple-peer; undefined if its stats cannot tell. */
export function readConnectionType(peer: SimplePeer.Instance): Promise<ConnectionType | undefined> {
  const getStats = (peer as WithStats).getStats;
  if (typeof getStats !== 'function') return Promise.resolve(undefined);
  return new Promise((resolve) => {
    try {
      getStats.call(peer, (error: unknown, reports: unknown) => resolve(error || !Array.isArray(reports) ? undefined : selectedConnectionType(reports)));
    } catch {
      resolve(undefined);
    }
  });
}
