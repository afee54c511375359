import type { Logger } from 'pino';
import { rename } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { PfError, createCodec } from '../protocol/index.ts';
import { sessionRecordCodec, type SessionRecord } from './session-record.ts';
import { readSnapshotFile, writeSnapshotFile } from './snapshot-file.ts';
import { SwarmTable } from './swarm-table.ts';
import type { PeerRecord, RemovePeerResult, SessionUpdate, Store, SwarmCounts, SyncSwarmOps, UpsertPeerResult } from './store.ts';

export interface MemoryStoreOptions {
  /** Where sessions are snapshotted; none = no persistence. */
  snapshotPath?: string;
  /** Snapshot interval (only when something changed); default 30 s. */
  snapshotIntervalMs?: number;
  /** Sessions held at most; creating more fails with 429. Default 1,000,000. */
  maxSessions?: number;
}

export type SnapshotLoadReport =
  | { status: 'disabled' | 'missing' }
  | { status: 'loaded'; sessions: number; skipped: number }
  | { status: 'corrupt'; reason: string; movedTo: string | undefined };

const SnapshotBodySchema = Type.Object({
  written_at_ms: Type.Integer({ minimum: 0 }),
  sessions: Type.Array(Type.Object({ expires_at_ms: Type.Integer({ minimum: 0 }), record: Type.Unknown() })),
});
const snapshotBodyCodec = createCodec(SnapshotBodySchema);

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
  private readonly subscribers = new Map<string, Set<(message: string) => void>>();
  private readonly maxSessions: number;
  private dirty = false;
  private snapshotting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: MemoryStoreOptions,
    private readonly logger: Logger,
  ) {
    this.maxSessions = options.maxSessions ?? 1_000_000;
  }

  /** Load the snapshot (if any) and start the snapshot timer. */
  async start(): Promise<void> {
    const path = this.options.snapshotPath;
    if (path) await this.load(path);
    // Expired sessions go on this timer even without a snapshot file, so memory stays bounded.
    this.timer = setInterval(() => {
      if (path && this.dirty) void this.snapshot();
      else if (!path) this.sweepSessions(Date.now());
    }, this.options.snapshotIntervalMs ?? 30_000);
    this.timer.unref();
  }

  private sweepSessions(now: number): void {
    for (const [id, stored] of this.sessions) if (stored.expiresAtMs <= now) this.sessions.delete(id);
  }

  private async load(path: string): Promise<void> {
    const read = await readSnapshotFile(path);
    if (read.status === 'missing') {
      this.snapshotLoad = { status: 'missing' };
      return;
    }
    const body = read.status === 'ok' ? snapshotBodyCodec.decode(read.body) : undefined;
    if (read.status === 'corrupt' || !body?.ok) {
      const reason = read.status === 'corrupt' ? read.reason : `bad body: ${body && !body.ok ? body.errors.join('; ') : ''}`;
      // Keep the bad file for inspection, out of the way of the next snapshot.
      const movedTo = `${path}.corrupt-${Date.now()}`;
      const moved = await rename(path, movedTo).then(
        () => movedTo,
        () => undefined,
      );
      this.snapshotLoad = { status: 'corrupt', reason, movedTo: moved };
      this.logger.error({ path, reason, movedTo: moved }, 'session snapshot is corrupt; starting without it');
      return;
    }
    const now = Date.now();
    let skipped = 0;
    for (const entry of body.value.sessions) {
      const record = sessionRecordCodec.decode(entry.record);
      if (!record.ok || entry.expires_at_ms <= now) {
        skipped++;
        continue;
      }
      this.sessions.set(record.value.session_id, { record: record.value, expiresAtMs: entry.expires_at_ms });
    }
    this.snapshotLoad = { status: 'loaded', sessions: this.sessions.size, skipped };
    if (skipped > 0) this.logger.warn({ path, skipped }, 'session snapshot had invalid or expired records');
    this.logger.info({ path, sessions: this.sessions.size }, 'session snapshot loaded');
  }

  /** Write the sessions to disk now (also runs on the interval and at close). */
  async snapshot(): Promise<void> {
    const path = this.options.snapshotPath;
    if (!path) return;
    if (this.snapshotting) await this.snapshotting;
    this.dirty = false;
    const now = Date.now();
    const sessions: { expires_at_ms: number; record: SessionRecord }[] = [];
    this.sweepSessions(now);
    for (const stored of this.sessions.values()) sessions.push({ expires_at_ms: stored.expiresAtMs, record: stored.record });
    this.snapshotting = writeSnapshotFile(path, { written_at_ms: now, sessions })
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
    if (stored && stored.expiresAtMs <= Date.now()) {
      this.sessions.delete(sessionId);
      this.dirty = true;
      return undefined;
    }
    return stored;
  }

  createSession(record: SessionRecord, ttlSeconds: number): Promise<void> {
    return this.settle(() => {
      if (this.sessions.size >= this.maxSessions) throw new PfError('PF_ERR_RATE_LIMITED', 'too many download sessions');
      this.sessions.set(record.session_id, { record: structuredClone(record), expiresAtMs: Date.now() + ttlSeconds * 1000 });
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
      this.sessions.set(sessionId, { record: structuredClone(next), expiresAtMs: Date.now() + ttlSeconds * 1000 });
      this.dirty = true;
      return next;
    });
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

  publish(owner: string, message: string): Promise<void> {
    return this.settle(() => {
      const handlers = this.subscribers.get(owner);
      if (!handlers) return;
      for (const handler of handlers) queueMicrotask(() => handler(message));
    });
  }

  subscribe(owner: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    return this.settle(() => {
      let handlers = this.subscribers.get(owner);
      if (!handlers) this.subscribers.set(owner, (handlers = new Set()));
      handlers.add(onMessage);
      return () => {
        handlers.delete(onMessage);
        if (handlers.size === 0) this.subscribers.delete(owner);
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
