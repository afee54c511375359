import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import {
  DIGEST_BASE64URL_RE,
  SESSION_ID_RE,
  Bitfield,
  PfError,
  checkPublisherAccess,
  type CreateDownloadBody,
  type CreateDownloadResponse,
  type FileDirectory,
  type IceServer,
  type PatchDownloadBody,
  type Progress,
  type SessionState,
  type UrlMinter,
} from '../../protocol/index.ts';
import type { ResolvedTrackerConfig } from '../config.ts';
import { iceServersFor } from '../ice-servers.ts';
import { CreationLimits } from './creation-limits.ts';
import type { TrackerMetrics } from '../metrics.ts';
import { applySessionEvent, checkReport, type ProgressReport, type SessionEvent } from './session-machine.ts';
import { announceProof, isAnnounceProofValid, tokenSha256 } from './session-proof.ts';
import type { SessionRecord } from './session-record.ts';
import type { Store } from '../store/store.ts';
import type { AddressGroup } from '../client-address.ts';

export type { ProgressReport } from './session-machine.ts';

const iso = (ms: number) => new Date(ms).toISOString();

export function sessionUrls(config: ResolvedTrackerConfig, fileId: string): { manifestUrl: string; trackerUrl: string } {
  return { manifestUrl: `${config.originUrl}/files/${encodeURIComponent(fileId)}/manifest`, trackerUrl: config.publicTrackerUrl };
}

/** Why an announce's session fields were not applied. */
export type AnnounceOutcome = 'ok' | 'not_found' | 'mismatch' | 'invalid' | 'unproven' | 'expired';

/** An announce event as the session machine sees it. */
export function announceSessionEvent(event: string | undefined, report: ProgressReport): SessionEvent {
  if (event === 'paused') return { kind: 'pause', report };
  if (event === 'started') return { kind: 'resume', report };
  return { kind: 'progress', report };
}

/**
 * Download sessions: creation, bearer-token checks, pause/resume and progress. Every
 * change is one atomic store update through the one state machine (session-machine.ts);
 * the token itself is never stored or logged, and no signed URL is stored either: each
 * answer that carries one gets it freshly minted.
 */
export class SessionService {
  private readonly now: () => number;

  constructor(
    private readonly config: ResolvedTrackerConfig,
    private readonly deps: { store: Store; directory: FileDirectory; minter: UrlMinter; metrics: TrackerMetrics; logger: Logger; now?: () => number },
  ) {
    this.now = deps.now ?? Date.now;
    this.limits = new CreationLimits(config, deps.metrics, this.now);
  }

  private readonly limits: CreationLimits;

  private get storeTtlSeconds(): number {
    return this.config.sessionIdleTtlSeconds + this.config.sessionExpiredRetentionSeconds;
  }

  /**
   * Body already checked by the route's schema (CreateDownloadBodySchema). Rate-limited per
   * client address, and per publisher key when one opens a private file (its API key, or the
   * key of its grant; the session then records the grant's user).
   */
  async create(body: CreateDownloadBody, caller: { addressGroup: AddressGroup; apiKey?: string }): Promise<CreateDownloadResponse> {
    this.limits.takeForAddress(caller.addressGroup);
    const file = await this.deps.directory.getByFileId(body.file_id);
    if (!file) throw new PfError('PF_ERR_FILE_NOT_FOUND');
    const { manifest } = file;
    const now = this.now();
    let user: string | undefined;
    if (file.isPrivate) {
      const access = await checkPublisherAccess(this.config.publisherKeys, { apiKey: caller.apiKey, grant: body.grant }, manifest.file_id, Math.floor(now / 1000));
      if (!access.ok) throw new PfError('PF_ERR_FORBIDDEN');
      this.limits.takeForKey(access.kid);
      user = access.user;
    }
    const minted = await this.deps.minter.mintDownloadUrl(manifest.file_id);
    const token = randomBytes(32).toString('base64url');
    const record: SessionRecord = {
      session_id: randomBytes(16).toString('base64url'),
      token_sha256: tokenSha256(token).toString('hex'),
      client_id: body.client_id,
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
    };
    if (record.client_id === undefined) delete record.client_id;
    if (user !== undefined) record.user = user;
    await this.deps.store.createSession(record, this.storeTtlSeconds);
    this.deps.metrics.sessionsCreated.inc();
    // Session ids are capabilities on the socket (with their proof): debug only.
    this.deps.logger.debug({ sessionId: record.session_id, fileId: record.file_id }, 'download session created');
    const urls = sessionUrls(this.config, manifest.file_id);
    // A private file's manifest is read with a signed URL: the session's right to the file.
    const manifestUrl = file.isPrivate ? `${this.config.originUrl}${await this.deps.minter.signPath(`/files/${encodeURIComponent(manifest.file_id)}/manifest`)}` : urls.manifestUrl;
    return {
      session_id: record.session_id,
      session_token: token,
      download_url: minted.url,
      file_size: manifest.size,
      checksum: record.checksum,
      content_type: manifest.content_type,
      expires_at: iso(minted.expiresAtSeconds * 1000),
      manifest_url: manifestUrl,
      tracker_url: urls.trackerUrl,
      info_hash: manifest.info_hash,
      announce_proof: announceProof(record.token_sha256, record.session_id, record.info_hash),
      ...this.#policy(record, now),
    };
  }

  /** The session, if `authorization` carries its token: missing = 401, wrong or unknown = 404. */
  async authorize(sessionId: string, authorization: string | undefined): Promise<SessionRecord> {
    const match = /^Bearer (\S+)$/i.exec(authorization ?? '');
    const token = match?.[1];
    if (!token || !DIGEST_BASE64URL_RE.test(token)) throw new PfError('PF_ERR_UNAUTHORIZED');
    const record = SESSION_ID_RE.test(sessionId) ? await this.deps.store.getSession(sessionId) : undefined;
    // Hash even when there is no record, so timing does not tell which ids exist.
    const presented = tokenSha256(token);
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

  /** The answer for an authorized caller: the state, a freshly minted URL (unless expired) and the announce proof. */
  async #answer(record: SessionRecord, now: number): Promise<SessionState> {
    const state = toState(record, now);
    if (state.status !== 'expired') {
      const minted = await this.deps.minter.mintDownloadUrl(record.file_id);
      state.download_url = minted.url;
      state.download_url_expires_at = iso(minted.expiresAtSeconds * 1000);
    }
    state.announce_proof = announceProof(record.token_sha256, record.session_id, record.info_hash);
    return { ...state, ...this.#policy(record, now) };
  }

  async get(sessionId: string, authorization: string | undefined): Promise<SessionState> {
    return this.#answer(await this.authorize(sessionId, authorization), this.now());
  }

  async progress(sessionId: string, authorization: string | undefined): Promise<Progress> {
    return toProgress(toState(await this.authorize(sessionId, authorization), this.now()));
  }

  /** Body already checked by the route's schema (PatchDownloadBodySchema). */
  async patch(sessionId: string, authorization: string | undefined, patch: PatchDownloadBody): Promise<SessionState> {
    const current = await this.authorize(sessionId, authorization);
    const now = this.now();
    if (current.expires_at_ms <= now) throw new PfError('PF_ERR_SESSION_EXPIRED');
    const report: ProgressReport = { have: patch.have, bytesConfirmed: patch.bytes_confirmed, bytesFromPeers: patch.bytes_from_peers, bytesFromHttp: patch.bytes_from_http };
    // Validate against the file before touching the store, so a bad body changes nothing.
    checkReport(current, report);
    const event: SessionEvent = { kind: patch.status === 'paused' ? 'pause' : patch.status === 'resumed' ? 'resume' : 'progress', report };
    const outcome = await this.#apply(sessionId, event, now);
    if (outcome.error) throw new PfError(outcome.error);
    return this.#answer(outcome.record, now);
  }

  /**
   * Progress riding on an announce. The socket carries no bearer token: the session's fields
   * count only with `proof` (announce_proof), and the session must belong to the swarm
   * announced to. Returns why not, if not.
   */
  async applyAnnounce(sessionId: string, proof: string | undefined, infoHash: string, report: ProgressReport, event: string | undefined): Promise<AnnounceOutcome> {
    const current = await this.deps.store.getSession(sessionId);
    if (!current) return 'not_found';
    if (proof === undefined || !isAnnounceProofValid(current.token_sha256, sessionId, current.info_hash, proof)) return 'unproven';
    if (current.info_hash !== infoHash) return 'mismatch';
    const outcome = await this.#apply(sessionId, announceSessionEvent(event, report), this.now());
    if (outcome.error === 'PF_ERR_SESSION_EXPIRED') return 'expired';
    if (outcome.error === 'PF_ERR_VALIDATION') return 'invalid';
    return outcome.error ? 'not_found' : 'ok';
  }

  /** Whether `proof` proves a live session of this swarm (private swarm admission). */
  async isProven(sessionId: string, proof: string, infoHash: string): Promise<boolean> {
    const record = await this.deps.store.getSession(sessionId);
    return record !== undefined && record.info_hash === infoHash && record.expires_at_ms > this.now() && isAnnounceProofValid(record.token_sha256, sessionId, infoHash, proof);
  }

  /** One atomic store update through the state machine. */
  async #apply(sessionId: string, event: SessionEvent, now: number): Promise<{ error?: undefined; record: SessionRecord } | { error: 'PF_ERR_SESSION_EXPIRED' | 'PF_ERR_VALIDATION' | 'PF_ERR_SESSION_NOT_FOUND' }> {
    let refused: 'PF_ERR_SESSION_EXPIRED' | 'PF_ERR_VALIDATION' | undefined;
    let deltas = { peers: 0, http: 0 };
    const updated = await this.deps.store.updateSession(
      sessionId,
      (record) => {
        const transition = applySessionEvent(record, event, now, this.config.sessionIdleTtlSeconds);
        if (!transition.ok) return void (refused = transition.code);
        deltas = transition.deltas;
        return transition.record;
      },
      this.storeTtlSeconds,
    );
    if (!updated) return { error: 'PF_ERR_SESSION_NOT_FOUND' };
    if (refused) return { error: refused };
    this.countOffload(updated.file_id, deltas);
    return { record: updated };
  }

  private countOffload(fileId: string, deltas: { peers: number; http: number }): void {
    if (deltas.peers > 0) this.deps.metrics.offloadBytes.inc({ file_id: fileId, source: 'peers' }, deltas.peers);
    if (deltas.http > 0) this.deps.metrics.offloadBytes.inc({ file_id: fileId, source: 'http' }, deltas.http);
  }
}

export function toState(record: SessionRecord, now: number): SessionState {
  return {
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
