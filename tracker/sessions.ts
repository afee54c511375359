import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import {
  Bitfield,
  PfError,
  createDownloadBodyCodec,
  patchDownloadBodyCodec,
  type CreateDownloadResponse,
  type FileDirectory,
  type IceServer,
  type Progress,
  type SessionState,
  type UrlMinter,
} from '../protocol/index.ts';
import type { ResolvedTrackerConfig } from './config.ts';
import { iceServersFor } from './ice-servers.ts';
import type { TrackerMetrics } from './metrics.ts';
import type { SessionRecord } from './session-record.ts';
import type { Store } from './store.ts';

/** Progress fields a client may report, by PATCH or on an announce (pf_* fields). */
export interface ProgressReport {
  have?: string;
  bytesConfirmed?: number;
  bytesFromPeers?: number;
  bytesFromHttp?: number;
}

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
const RATE_SMOOTHING = 0.5;

const iso = (ms: number) => new Date(ms).toISOString();
const tokenHash = (token: string) => createHash('sha256').update(token).digest();

export function sessionUrls(config: ResolvedTrackerConfig, fileId: string): { manifestUrl: string; trackerUrl: string } {
  return { manifestUrl: `${config.originUrl}/files/${encodeURIComponent(fileId)}/manifest`, trackerUrl: config.publicTrackerUrl };
}

/**
 * Download sessions: creation, bearer-token checks, pause/resume and progress. Every
 * change is one atomic store update; the token itself is never stored or logged.
 */
export class SessionService {
  constructor(
    private readonly config: ResolvedTrackerConfig,
    private readonly deps: { store: Store; directory: FileDirectory; minter: UrlMinter; metrics: TrackerMetrics; logger: Logger },
  ) {}

  private get storeTtlSeconds(): number {
    return this.config.sessionIdleTtlSeconds + this.config.sessionExpiredRetentionSeconds;
  }

  async create(body: unknown): Promise<CreateDownloadResponse> {
    const decoded = createDownloadBodyCodec.decode(body);
    if (!decoded.ok) throw new PfError('PF_ERR_VALIDATION', decoded.errors.join('; '));
    const file = await this.deps.directory.getByFileId(decoded.value.file_id);
    if (!file) throw new PfError('PF_ERR_FILE_NOT_FOUND');
    const { manifest } = file;
    const minted = await this.deps.minter.mintDownloadUrl(manifest.file_id);
    const token = randomBytes(32).toString('base64url');
    const now = Date.now();
    const record: SessionRecord = {
      session_id: randomBytes(16).toString('base64url'),
      token_sha256: tokenHash(token).toString('hex'),
      client_id: decoded.value.client_id,
      file_id: manifest.file_id,
      info_hash: manifest.info_hash,
      checksum: `sha256:${manifest.sha256}`,
      total_bytes: manifest.size,
      chunk_size: manifest.chunk_size,
      chunk_count: manifest.chunks.length,
      status: 'active',
      have: new Bitfield(manifest.chunks.length).toBase64Url(),
      bytes_confirmed: 0,
      contiguous_bytes: 0,
      bytes_from_peers: 0,
      bytes_from_http: 0,
      transfer_rate_bps: 0,
      rate_sampled_at_ms: now,
      created_at_ms: now,
      updated_at_ms: now,
      expires_at_ms: now + this.config.sessionIdleTtlSeconds * 1000,
      download_url: minted.url,
      download_url_expires_at_ms: minted.expiresAtSeconds * 1000,
    };
    if (record.client_id === undefined) delete record.client_id;
    await this.deps.store.createSession(record, this.storeTtlSeconds);
    this.deps.metrics.sessionsCreated.inc();
    this.deps.logger.info({ sessionId: record.session_id, fileId: record.file_id }, 'download session created');
    const urls = sessionUrls(this.config, manifest.file_id);
    return {
      session_id: record.session_id,
      session_token: token,
      download_url: minted.url,
      file_size: manifest.size,
      checksum: record.checksum,
      content_type: manifest.content_type,
      expires_at: iso(minted.expiresAtSeconds * 1000),
      manifest_url: urls.manifestUrl,
      tracker_url: urls.trackerUrl,
      info_hash: manifest.info_hash,
      ...this.#policy(record, now),
    };
  }

  /** The session, if `authorization` carries its token: missing = 401, wrong or unknown = 404. */
  async authorize(sessionId: string, authorization: string | undefined): Promise<SessionRecord> {
    const match = /^Bearer (\S+)$/i.exec(authorization ?? '');
    const token = match?.[1];
    if (!token || !TOKEN_RE.test(token)) throw new PfError('PF_ERR_UNAUTHORIZED');
    const record = /^[A-Za-z0-9_-]{16,64}$/.test(sessionId) ? await this.deps.store.getSession(sessionId) : undefined;
    // Hash even when there is no record, so timing does not tell which ids exist.
    const presented = tokenHash(token);
    const expected = record ? Buffer.from(record.token_sha256, 'hex') : Buffer.alloc(32);
    if (!timingSafeEqual(presented, expected) || !record) throw new PfError('PF_ERR_SESSION_NOT_FOUND');
    return record;
  }

  /** The publisher's download policy and ICE servers, as every session answer carries them. */
  #policy(record: SessionRecord, now: number): { speed_floor_bps?: number; ice_servers?: IceServer[] } {
    const floor = this.config.speedFloorBitsPerSecond;
    const iceServers = iceServersFor(this.config.ice, record.session_id, now, record.expires_at_ms);
    return { ...(floor === undefined ? {} : { speed_floor_bps: floor }), ...(iceServers === undefined ? {} : { ice_servers: iceServers }) };
  }

  async get(sessionId: string, authorization: string | undefined): Promise<SessionState> {
    const record = await this.authorize(sessionId, authorization);
    const now = Date.now();
    return { ...toState(record, now), ...this.#policy(record, now) };
  }

  async progress(sessionId: string, authorization: string | undefined): Promise<Progress> {
    return toProgress(toState(await this.authorize(sessionId, authorization), Date.now()));
  }

  async patch(sessionId: string, authorization: string | undefined, body: unknown): Promise<SessionState> {
    const decoded = patchDownloadBodyCodec.decode(body);
    if (!decoded.ok) throw new PfError('PF_ERR_VALIDATION', decoded.errors.join('; '));
    const current = await this.authorize(sessionId, authorization);
    const patch = decoded.value;
    const now = Date.now();
    if (current.expires_at_ms <= now) throw new PfError('PF_ERR_SESSION_EXPIRED');
    // Validate against the file before touching the store, so a bad body changes nothing.
    const report: ProgressReport = { have: patch.have, bytesConfirmed: patch.bytes_confirmed, bytesFromPeers: patch.bytes_from_peers, bytesFromHttp: patch.bytes_from_http };
    checkReport(current, report);
    const minted = patch.status === 'resumed' ? await this.deps.minter.mintDownloadUrl(current.file_id) : undefined;
    let deltas = { peers: 0, http: 0 };
    const updated = await this.deps.store.updateSession(
      sessionId,
      (record) => {
        if (record.expires_at_ms <= now) return undefined;
        const result = applyReport(record, report, now);
        deltas = result.deltas;
        const next = result.record;
        if (patch.status === 'paused' && next.status === 'active') next.status = 'paused';
        if (patch.status === 'resumed' && next.status === 'paused') next.status = 'active';
        if (patch.status === 'paused') next.transfer_rate_bps = 0;
        if (minted) {
          next.download_url = minted.url;
          next.download_url_expires_at_ms = minted.expiresAtSeconds * 1000;
        }
        return touch(next, now, this.config.sessionIdleTtlSeconds);
      },
      this.storeTtlSeconds,
    );
    if (!updated) throw new PfError('PF_ERR_SESSION_NOT_FOUND');
    if (updated.expires_at_ms <= now) throw new PfError('PF_ERR_SESSION_EXPIRED');
    this.countOffload(updated.file_id, deltas);
    return { ...toState(updated, now), ...this.#policy(updated, now) };
  }

  /**
   * Progress riding on an announce. No token travels on the socket, so the session id is
   * the capability; the session must belong to the swarm announced to. Returns why not, if not.
   */
  async applyAnnounce(sessionId: string, infoHash: string, report: ProgressReport, event: string | undefined): Promise<'ok' | 'not_found' | 'mismatch' | 'invalid'> {
    const now = Date.now();
    const result: { outcome: 'ok' | 'not_found' | 'mismatch' | 'invalid' } = { outcome: 'not_found' };
    let deltas = { peers: 0, http: 0 };
    const updated = await this.deps.store.updateSession(
      sessionId,
      (record) => {
        if (record.info_hash !== infoHash) return void (result.outcome = 'mismatch');
        if (record.expires_at_ms <= now) return void (result.outcome = 'not_found');
        try {
          checkReport(record, report);
        } catch {
          return void (result.outcome = 'invalid');
        }
        result.outcome = 'ok';
        const applied = applyReport(record, report, now);
        deltas = applied.deltas;
        const next = applied.record;
        if (event === 'paused' && next.status === 'active') {
          next.status = 'paused';
          next.transfer_rate_bps = 0;
        }
        if (event === 'started' && next.status === 'paused') next.status = 'active';
        return touch(next, now, this.config.sessionIdleTtlSeconds);
      },
      this.storeTtlSeconds,
    );
    if (updated && result.outcome === 'ok') this.countOffload(updated.file_id, deltas);
    return result.outcome;
  }

  private countOffload(fileId: string, deltas: { peers: number; http: number }): void {
    if (deltas.peers > 0) this.deps.metrics.offloadBytes.inc({ file_id: fileId, source: 'peers' }, deltas.peers);
    if (deltas.http > 0) this.deps.metrics.offloadBytes.inc({ file_id: fileId, source: 'http' }, deltas.http);
  }
}

function touch(record: SessionRecord, now: number, idleTtlSeconds: number): SessionRecord {
  record.updated_at_ms = now;
  record.expires_at_ms = now + idleTtlSeconds * 1000;
  return record;
}

/** Throws PF_ERR_VALIDATION if the report does not fit the session's file. */
function checkReport(record: SessionRecord, report: ProgressReport): void {
  if (report.have !== undefined && !Bitfield.fromBase64Url(report.have, record.chunk_count)) {
    throw new PfError('PF_ERR_VALIDATION', `have must be a base64url bitfield of ${record.chunk_count} chunks`);
  }
  if (report.bytesConfirmed !== undefined && (!Number.isSafeInteger(report.bytesConfirmed) || report.bytesConfirmed > record.total_bytes)) {
    throw new PfError('PF_ERR_VALIDATION', `bytes_confirmed must be an integer of at most ${record.total_bytes}`);
  }
}

/** Verified bytes that a bitfield stands for (the last chunk may be short). */
function haveBytes(record: SessionRecord, have: Bitfield): number {
  const lastIndex = record.chunk_count - 1;
  const lastSize = record.total_bytes - lastIndex * record.chunk_size;
  const count = have.count();
  return have.get(lastIndex) ? (count - 1) * record.chunk_size + lastSize : count * record.chunk_size;
}

/**
 * Absolute values, so replaying a report changes nothing: the bitfield replaces the old
 * one (a client may lose chunks), the byte counters only grow.
 */
function applyReport(record: SessionRecord, report: ProgressReport, now: number): { record: SessionRecord; deltas: { peers: number; http: number } } {
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
  const deltas = {
    peers: Math.max(0, Math.floor(report.bytesFromPeers ?? 0) - record.bytes_from_peers),
    http: Math.max(0, Math.floor(report.bytesFromHttp ?? 0) - record.bytes_from_http),
  };
  record.bytes_from_peers += deltas.peers;
  record.bytes_from_http += deltas.http;
  if (record.bytes_confirmed !== before) {
    const elapsedMs = now - record.rate_sampled_at_ms;
    if (elapsedMs > 0 && record.bytes_confirmed > before) {
      // bits per second, as the `_bps` of the contract says
      const instant = ((record.bytes_confirmed - before) * 8 * 1000) / elapsedMs;
      record.transfer_rate_bps = record.transfer_rate_bps === 0 ? instant : RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * record.transfer_rate_bps;
    }
    record.rate_sampled_at_ms = now;
  }
  if (record.bytes_confirmed >= record.total_bytes && (record.chunk_count === 0 || report.have !== undefined || report.bytesConfirmed !== undefined)) {
    record.status = 'completed';
    record.transfer_rate_bps = 0;
  }
  return { record, deltas };
}

export function toState(record: SessionRecord, now: number): SessionState {
  const state: SessionState = {
    session_id: record.session_id,
    file_id: record.file_id,
    info_hash: record.info_hash,
    checksum: record.checksum,
    status: record.expires_at_ms <= now ? 'expired' : record.status,
    total_bytes: record.total_bytes,
    bytes_confirmed: record.bytes_confirmed,
    contiguous_bytes: record.contiguous_bytes,
    have: record.have,
    bytes_from_peers: record.bytes_from_peers,
    bytes_from_http: record.bytes_from_http,
    transfer_rate_bps: Math.round(record.transfer_rate_bps),
    created_at: iso(record.created_at_ms),
    updated_at: iso(record.updated_at_ms),
    expires_at: iso(record.expires_at_ms),
  };
  if (record.download_url !== undefined) state.download_url = record.download_url;
  if (record.download_url_expires_at_ms !== undefined) state.download_url_expires_at = iso(record.download_url_expires_at_ms);
  return state;
}

export function toProgress(state: SessionState): Progress {
  const percentage = state.total_bytes === 0 ? (state.status === 'completed' ? 100 : 0) : Math.min(100, Math.round((state.bytes_confirmed / state.total_bytes) * 10_000) / 100);
  return {
    bytes_confirmed: state.bytes_confirmed,
    total_bytes: state.total_bytes,
    percentage,
    status: state.status,
    transfer_rate_bps: state.transfer_rate_bps,
    bytes_from_peers: state.bytes_from_peers,
    bytes_from_http: state.bytes_from_http,
  };
}
