import type { Logger } from 'pino';
import { rename } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { PfError, createCodec } from '../../protocol/index.ts';
import { sessionRecordCodec, type SessionRecord } from '../sessions/session-record.ts';
import { readSnapshotRecords, writeSnapshotRecords } from './snapshot-file.ts';
import { SwarmTable } from './swarm-table.ts';
import type { PeerRecord, RemovePeerResult, SessionUpdate, Store, SwarmCounts, SyncSwarmOps, UpsertPeerResult } from './store.ts';

export interface MemoryStoreOptions {
  /** Where sessions are snapshotted; none = no persistence. */
  snapshotPath?: string;
  /** Snapshot interval (only when something changed); default 30 s. */
  snapshotIntervalMs?: number;
  /** Sessions held at most; when full, expired ones make room first, else creating fails with 429. Default 1,000,000. */
  maxSessions?: number;
  /** The clock (ms); Date.now by default. */
  now?: () => number;
}

export type SnapshotLoadReport =
  | { status: 'disabled' | 'missing' }
  | { status: 'loaded'; sessions: number; skipped: number }
  | { status: 'corrupt'; reason: string; movedTo: string | undefined };

/** One snapshot line: when the store lets the session go, and the record. */
const SnapshotEntrySchema = Type.Object({ e: Type.Integer({ minimum: 0 }), r: Type.Unknown() });
const snapshotEntryCodec = createCodec(SnapshotEntrySchema);
/** The same, in the one-string snapshots written before. */
const LegacyEntrySchema = Type.Object({ expires_at_ms: Type.Integer({ minimum: 0 }), record: Type.Unknown() });
const legacyEntryCodec = createCodec(LegacyEntrySchema);
/** A full store answers 429 with at most this Retry-After. */
const MAX_FULL_RETRY_AFTER_SECONDS = 60;

function entryOf(value: unknown): { expiresAtMs: number; record: unknown } | undefined {
  if (snapshotEntryCodec.is(value)) return { expiresAtMs: value.e, record: value.r };
  if (legacyEntryCodec.is(value)) return { expiresAtMs: value.expires_at_ms, record: value.record };
  return undefined;
}

/** Records of older versions kept a live signed URL; URLs are minted on demand now. */
function withoutStoredUrl(record: SessionRecord & { download_url?: unknown; download_url_expires_at_ms?: unknown }): SessionRecord {
  const { download_url: _url, download_url_expires_at_ms: _expiry, ...rest } = record;
  return rest;
}

interface StoredSession {
  record: SessionRecord;
  expiresAtMs: number;
}

/**
 * The embedded store: everything in this process. Swarm membership is ephemeral (it dies
 * with the sockets); sessions are snapshotted so pause/resume state survives a restart.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  snapshotLoad: SnapshotLoadReport = { status: 'disabled' };
  private readonly swarms = new Map<string, SwarmTable>();
  private readonly sessions = new Map<string, StoredSession>();
  /** Relay subscriptions by `<info_hash>/<owner>`: one per channel, the latest replaces the one before. */
  private readonly subscribers = new Map<string, { onMessage: (message: string) => void }>();
  private readonly maxSessions: number;
  private readonly now: () => number;
  /** No session's idle expiry comes before this: a full store need not be rescanned until then. */
  private nextEvictableAtMs = 0;
  private dirty = false;
  private snapshotting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: MemoryStoreOptions,
    private readonly logger: Logger,
  ) {
    this.maxSessions = options.maxSessions ?? 1_000_000;
    this.now = options.now ?? Date.now;
  }

  /** Load the snapshot (if any) and start the snapshot timer. */
  async start(): Promise<void> {
    const path = this.options.snapshotPath;
    if (path) await this.load(path);
    // Expired sessions go on this timer even without a snapshot file, so memory stays bounded.
    this.timer = setInterval(() => {
      if (path && this.dirty) void this.snapshot();
      else if (!path) this.sweepSessions(this.now());
    }, this.options.snapshotIntervalMs ?? 30_000);
    this.timer.unref();
  }

  private sweepSessions(now: number): void {
    for (const [id, stored] of this.sessions) if (stored.expiresAtMs <= now) this.sessions.delete(id);
  }

  private async load(path: string): Promise<void> {
    const read = await readSnapshotRecords(path);
    if (read.status === 'missing') {
      this.snapshotLoad = { status: 'missing' };
      return;
    }
    if (read.status === 'corrupt') {
      // Keep the bad file for inspection, out of the way of the next snapshot.
      const movedTo = `${path}.corrupt-${this.now()}`;
      const moved = await rename(path, movedTo).then(
        () => movedTo,
        () => undefined,
      );
      this.snapshotLoad = { status: 'corrupt', reason: read.reason, movedTo: moved };
      this.logger.error({ path, reason: read.reason, movedTo: moved }, 'session snapshot is corrupt; starting without it');
      return;
    }
    const now = this.now();
    let skipped = 0;
    for (const value of read.records) {
      const entry = entryOf(value);
      const record = entry && sessionRecordCodec.decode(entry.record);
      if (!entry || !record?.ok || entry.expiresAtMs <= now) {
        skipped++;
        continue;
      }
      this.sessions.set(record.value.session_id, { record: withoutStoredUrl(record.value), expiresAtMs: entry.expiresAtMs });
    }
    this.snapshotLoad = { status: 'loaded', sessions: this.sessions.size, skipped };
    if (skipped > 0) this.logger.warn({ path, skipped }, 'session snapshot had invalid or expired records');
    this.logger.info({ path, sessions: this.sessions.size }, 'session snapshot loaded');
  }

  /** The snapshot's lines, read from the live map as the write goes (records are replaced, never changed in place). */
  private *snapshotEntries(now: number): Generator<{ e: number; r: SessionRecord }> {
    for (const [id, stored] of this.sessions) {
      // Expired ones go on the way (deleting the entry just visited is safe in a Map).
      if (stored.expiresAtMs <= now) this.sessions.delete(id);
      else yield { e: stored.expiresAtMs, r: stored.record };
    }
  }

  /** Write the sessions to disk now (also runs on the interval and at close). */
  async snapshot(): Promise<void> {
    const path = this.options.snapshotPath;
    if (!path) return;
    if (this.snapshotting) await this.snapshotting;
    this.dirty = false;
    const now = this.now();
    this.snapshotting = writeSnapshotRecords(path, { written_at_ms: now }, this.snapshotEntries(now))
      .then(() => undefined)
      .catch((error: unknown) => {
        this.dirty = true;
        this.logger.error({ err: error, path }, 'session snapshot failed');
      })
      .finally(() => {
        this.snapshotting = undefined;
      });
    await this.snapshotting;
  }

  /** Run synchronous store code with the async contract: a throw becomes a rejection. */
  private settle<T>(operation: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new PfError('PF_ERR_STORE_UNAVAILABLE', 'store is closed'));
    try {
      return Promise.resolve(operation());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  readonly sync: SyncSwarmOps = {
    upsertPeer: (infoHash, peer, nowMs) => {
      this.assertOpen();
      let swarm = this.swarms.get(infoHash);
      const existing = swarm?.get(peer.peerId);
      if (existing && existing.owner !== peer.owner) return { ok: false, reason: 'owned_elsewhere', owner: existing.owner };
      if (!swarm) {
        swarm = new SwarmTable();
        this.swarms.set(infoHash, swarm);
      }
      // A peer that has completed stays complete until it leaves.
      const complete = peer.complete || (existing?.complete ?? false);
      const isNew = swarm.set({ peerId: peer.peerId, owner: peer.owner, complete, lastSeenMs: nowMs });
      return { ok: true, counts: swarm.counts(), isNew };
    },
    removePeer: (infoHash, peerId, owner) => {
      this.assertOpen();
      const swarm = this.swarms.get(infoHash);
      if (!swarm) return { ok: true, counts: { complete: 0, incomplete: 0 } };
      const existing = swarm.get(peerId);
      if (existing && existing.owner !== owner) return { ok: false, reason: 'owned_elsewhere', owner: existing.owner };
      swarm.delete(peerId);
      if (swarm.size === 0) this.swarms.delete(infoHash);
      return { ok: true, counts: swarm.counts() };
    },
    getPeer: (infoHash, peerId) => {
      this.assertOpen();
      const record = this.swarms.get(infoHash)?.get(peerId);
      return record && { ...record };
    },
    randomPeers: (infoHash, count, excludePeerId) => {
      this.assertOpen();
      return this.swarms.get(infoHash)?.random(count, excludePeerId) ?? [];
    },
    counts: (infoHash) => {
      this.assertOpen();
      return this.swarms.get(infoHash)?.counts() ?? { complete: 0, incomplete: 0 };
    },
  };

  private assertOpen(): void {
    if (this.closed) throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'store is closed');
  }

  upsertPeer(infoHash: string, peer: { peerId: string; owner: string; complete: boolean }, nowMs: number): Promise<UpsertPeerResult> {
    return this.settle(() => this.sync.upsertPeer(infoHash, peer, nowMs));
  }

  removePeer(infoHash: string, peerId: string, owner: string): Promise<RemovePeerResult> {
    return this.settle(() => this.sync.removePeer(infoHash, peerId, owner));
  }

  getPeer(infoHash: string, peerId: string): Promise<PeerRecord | undefined> {
    return this.settle(() => this.sync.getPeer(infoHash, peerId));
  }

  randomPeers(infoHash: string, count: number, excludePeerId: string): Promise<PeerRecord[]> {
    return this.settle(() => this.sync.randomPeers(infoHash, count, excludePeerId));
  }

  counts(infoHash: string): Promise<SwarmCounts> {
    return this.settle(() => this.sync.counts(infoHash));
  }

  prunePeers(cutoffMs: number): Promise<number> {
    return this.settle(() => {
      let dropped = 0;
      for (const [infoHash, swarm] of this.swarms) {
        const stale: string[] = [];
        for (const record of swarm.records()) if (record.lastSeenMs < cutoffMs) stale.push(record.peerId);
        for (const peerId of stale) if (swarm.delete(peerId)) dropped++;
        if (swarm.size === 0) this.swarms.delete(infoHash);
      }
      return dropped;
    });
  }

  swarmCount(): Promise<number> {
    return this.settle(() => {
      return this.swarms.size;
    });
  }

  private liveSession(sessionId: string): StoredSession | undefined {
    const stored = this.sessions.get(sessionId);
    if (stored && stored.expiresAtMs <= this.now()) {
      this.sessions.delete(sessionId);
      this.dirty = true;
      return undefined;
    }
    return stored;
  }

  createSession(record: SessionRecord, ttlSeconds: number): Promise<void> {
    return this.settle(() => {
      const now = this.now();
      if (!this.makeRoom(now)) {
        const retryAfterSeconds = Math.min(MAX_FULL_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil((this.nextEvictableAtMs - now) / 1000)));
        throw new PfError('PF_ERR_RATE_LIMITED', 'the tracker holds as many download sessions as it may', { retryAfterSeconds });
      }
      this.sessions.set(record.session_id, { record: structuredClone(record), expiresAtMs: now + ttlSeconds * 1000 });
      this.dirty = true;
    });
  }

  getSession(sessionId: string): Promise<SessionRecord | undefined> {
    return this.settle(() => {
      const stored = this.liveSession(sessionId);
      return stored && structuredClone(stored.record);
    });
  }

  updateSession(sessionId: string, update: SessionUpdate, ttlSeconds: number): Promise<SessionRecord | undefined> {
    return this.settle(() => {
      const stored = this.liveSession(sessionId);
      if (!stored) return undefined;
      // Single-threaded: nothing can interleave between this read and write.
      const next = update(structuredClone(stored.record));
      if (!next) return structuredClone(stored.record);
      this.sessions.set(sessionId, { record: structuredClone(next), expiresAtMs: this.now() + ttlSeconds * 1000 });
      this.dirty = true;
      return next;
    });
  }

  /**
   * At the cap, sessions past their idle expiry (kept only to answer `expired`) make room,
   * before any live one is refused. One scan finds them all and the soonest next one.
   */
  private makeRoom(now: number): boolean {
    if (this.sessions.size < this.maxSessions) return true;
    if (now < this.nextEvictableAtMs) return false;
    let soonest = Number.POSITIVE_INFINITY;
    for (const [id, stored] of this.sessions) {
      if (stored.expiresAtMs <= now || stored.record.expires_at_ms <= now) this.sessions.delete(id);
      else soonest = Math.min(soonest, stored.record.expires_at_ms);
    }
    this.dirty = true;
    this.nextEvictableAtMs = soonest;
    return this.sessions.size < this.maxSessions;
  }

  deleteSession(sessionId: string): Promise<void> {
    return this.settle(() => {
      if (this.sessions.delete(sessionId)) this.dirty = true;
    });
  }

  sessionCount(): Promise<number> {
    return this.settle(() => {
      return this.sessions.size;
    });
  }

  publish(infoHash: string, owner: string, message: string): Promise<void> {
    return this.settle(() => {
      const handler = this.subscribers.get(`${infoHash}/${owner}`);
      if (handler) queueMicrotask(() => handler.onMessage(message));
    });
  }

  subscribe(infoHash: string, owner: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    return this.settle(() => {
      const channel = `${infoHash}/${owner}`;
      const subscription = { onMessage };
      this.subscribers.set(channel, subscription);
      return () => {
        if (this.subscribers.get(channel) === subscription) this.subscribers.delete(channel);
        return Promise.resolve();
      };
    });
  }

  isAvailable(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.snapshot();
  }
}
