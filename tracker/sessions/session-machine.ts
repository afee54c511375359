import { Bitfield, PfError } from '../../protocol/index.ts';
import type { SessionRecord } from './session-record.ts';

/** Progress fields a client may report, by PATCH or on an announce (pf_* fields). */
export interface ProgressReport {
  have?: string;
  bytesConfirmed?: number;
  bytesFromPeers?: number;
  bytesFromHttp?: number;
}

/**
 * What happens to a session: progress alone, or progress with a pause or a resume. PATCH
 * `{status}` and announce events (`paused`, `started`) are both turned into one of these.
 */
export type SessionEvent = { kind: 'progress' | 'pause' | 'resume'; report: ProgressReport };

export type SessionTransition =
  | { ok: true; record: SessionRecord; deltas: { peers: number; http: number } }
  | { ok: false; code: 'PF_ERR_SESSION_EXPIRED' | 'PF_ERR_VALIDATION'; message?: string };

const RATE_SMOOTHING = 0.5;

/**
 * The one session state machine. active <-> paused by pause/resume; either -> completed once
 * every byte is confirmed (completed stays completed); any -> expired when the idle TTL
 * passes (only read: an expired session takes no event). Pure: the clock is `nowMs`.
 *
 * Reports are absolute values, so replaying one changes nothing: the bitfield replaces the
 * old one (a client may lose chunks), the byte counters only grow and never past the file's
 * size (the offload metric publishers pay by cannot be inflated).
 */
export function applySessionEvent(current: SessionRecord, event: SessionEvent, nowMs: number, idleTtlSeconds: number): SessionTransition {
  if (current.expires_at_ms <= nowMs) return { ok: false, code: 'PF_ERR_SESSION_EXPIRED' };
  const problem = reportProblem(current, event.report);
  if (problem) return { ok: false, code: 'PF_ERR_VALIDATION', message: problem };
  const record = { ...current };
  const deltas = applyReport(record, event.report, nowMs);
  if (event.kind === 'pause' && record.status === 'active') record.status = 'paused';
  if (event.kind === 'resume' && record.status === 'paused') record.status = 'active';
  if (record.status !== 'active') record.transfer_rate_bps = 0;
  record.updated_at_ms = nowMs;
  record.expires_at_ms = nowMs + idleTtlSeconds * 1000;
  return { ok: true, record, deltas };
}

/** Why the report does not fit the session's file, or undefined. */
function reportProblem(record: SessionRecord, report: ProgressReport): string | undefined {
  if (report.have !== undefined && !Bitfield.fromBase64Url(report.have, record.chunk_count)) {
    return `have must be a base64url bitfield of ${record.chunk_count} chunks`;
  }
  if (report.bytesConfirmed !== undefined && (!Number.isSafeInteger(report.bytesConfirmed) || report.bytesConfirmed < 0 || report.bytesConfirmed > record.total_bytes)) {
    return `bytes_confirmed must be an integer of at most ${record.total_bytes}`;
  }
  for (const value of [report.bytesFromPeers, report.bytesFromHttp]) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) return 'byte counters must be non-negative numbers';
  }
  return undefined;
}

/** Throws PF_ERR_VALIDATION when the report does not fit the session's file (checked before a store call). */
export function checkReport(record: SessionRecord, report: ProgressReport): void {
  const problem = reportProblem(record, report);
  if (problem) throw new PfError('PF_ERR_VALIDATION', problem);
}

/** Verified bytes that a bitfield stands for (the last chunk may be short). */
function haveBytes(record: SessionRecord, have: Bitfield): number {
  const lastIndex = record.chunk_count - 1;
  const lastSize = record.total_bytes - lastIndex * record.chunk_size;
  const count = have.count();
  return have.get(lastIndex) ? (count - 1) * record.chunk_size + lastSize : count * record.chunk_size;
}

function applyReport(record: SessionRecord, report: ProgressReport, nowMs: number): { peers: number; http: number } {
  const before = record.bytes_confirmed;
  if (report.have !== undefined) {
    const have = Bitfield.fromBase64Url(report.have, record.chunk_count)!;
    record.have = have.toBase64Url();
    record.bytes_confirmed = haveBytes(record, have);
    record.contiguous_bytes = Math.min(have.prefixLength() * record.chunk_size, record.total_bytes);
  } else if (report.bytesConfirmed !== undefined) {
    record.bytes_confirmed = Math.floor(report.bytesConfirmed);
    record.contiguous_bytes = Math.min(record.contiguous_bytes, record.bytes_confirmed);
  }
  const clamp = (value: number | undefined) => Math.min(record.total_bytes, Math.floor(value ?? 0));
  const deltas = {
    peers: Math.max(0, clamp(report.bytesFromPeers) - record.bytes_from_peers),
    http: Math.max(0, clamp(report.bytesFromHttp) - record.bytes_from_http),
  };
  record.bytes_from_peers += deltas.peers;
  record.bytes_from_http += deltas.http;
  if (record.bytes_confirmed !== before) {
    const elapsedMs = nowMs - record.rate_sampled_at_ms;
    if (elapsedMs > 0 && record.bytes_confirmed > before) {
      // bits per second, as the `_bps` of the contract says
      const instant = ((record.bytes_confirmed - before) * 8 * 1000) / elapsedMs;
      record.transfer_rate_bps = record.transfer_rate_bps === 0 ? instant : RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * record.transfer_rate_bps;
    }
    record.rate_sampled_at_ms = nowMs;
  }
  if (record.bytes_confirmed >= record.total_bytes && (record.chunk_count === 0 || report.have !== undefined || report.bytesConfirmed !== undefined)) {
    record.status = 'completed';
    record.transfer_rate_bps = 0;
  }
  return deltas;
}
