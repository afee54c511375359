import type { Logger } from 'pino';
import {
  hexToBinaryString,
  isPfError,
  type AnnounceRequest,
  type AnnounceResponse,
  type ErrorCode,
  type FailureFrame,
  type ScrapeRequest,
  type ScrapeResponse,
} from '../../protocol/index.ts';
import type { ResolvedTrackerConfig } from '../config.ts';
import type { RejectReason, TrackerMetrics } from '../metrics.ts';
import type { PublishedHashes } from './published-hashes.ts';
import type { Relay } from './relay.ts';
import type { SessionService } from '../sessions/sessions.ts';
import { binaryIdToHex } from './binary-id.ts';
import { SampledWarn } from '../sampled-warn.ts';
import { KeyedBuckets } from '../ws/token-bucket.ts';
import { runSteps, settle, type Awaiting, type Steps } from '../store/steps.ts';
import type { PeerRecord, RemovePeerResult, Store, SwarmCounts, SwarmOps, UpsertPeerResult } from '../store/store.ts';
import type { LocalSwarms, SwarmSocket } from '../ws/swarm-socket.ts';

export interface AnnounceDeps {
  config: ResolvedTrackerConfig;
  trackerId: string;
  local: LocalSwarms;
  store: Store;
  relay: Relay;
  sessions: SessionService;
  published: PublishedHashes;
  metrics: TrackerMetrics;
  logger: Logger;
}

/** A refusal for one frame: sent back as a failure frame, logged as a warning, counted. */
export class Rejection extends Error {
  constructor(
    readonly reason: RejectReason,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'Rejection';
  }
}

export function failureFrame(rejection: Rejection, infoHash?: string): FailureFrame {
  const frame: FailureFrame = { 'failure reason': rejection.message, pf_code: rejection.code };
  // bittorrent-tracker clients ignore frames for other info_hashes, so name it when known.
  if (infoHash !== undefined) {
    frame.action = 'announce';
    frame.info_hash = infoHash;
  }
  return frame;
}

/**
 * The announce and scrape actions of the WebTorrent tracker protocol, as bittorrent-tracker's
 * server answers them: a response with interval and counts, then one offer to each of up to
 * numwant random peers; answers go to `to_peer_id` with no response of their own.
 *
 * An announce is a step function (steps.ts): with a store that answers synchronously (the
 * memory store) it runs start to finish without a promise; with Redis it awaits each call.
 */
export class AnnounceHandler {
  private readonly ops: SwarmOps;
  private readonly announceCounters = new Map<string, { inc(): void }>();
  /** Relayed offers per client address, over all its sockets. */
  private readonly offerBudgets: KeyedBuckets;
  private readonly refusals: SampledWarn;

  constructor(private readonly deps: AnnounceDeps) {
    this.ops = deps.store.sync ?? deps.store;
    this.refusals = new SampledWarn(deps.logger);
    this.offerBudgets = new KeyedBuckets(deps.config.maxRelayedOffersPerAddressPerSecond, deps.config.relayedOfferBurstPerAddress);
  }

  /** Handle one announce; undefined when it was handled synchronously (a refusal then throws). */
  announce(socket: SwarmSocket, request: AnnounceRequest): Promise<void> | undefined {
    return runSteps(this.announceSteps(socket, request));
  }

  private *announceSteps(socket: SwarmSocket, request: AnnounceRequest): Steps {
    const { config, local } = this.deps;
    const infoHash = binaryIdToHex(request.info_hash);
    const peerId = binaryIdToHex(request.peer_id);
    const now = Date.now();

    const owner = local.owners.get(peerId);
    if (owner && owner !== socket) throw new Rejection('spoofed_peer_id', 'PF_ERR_UNAUTHORIZED', 'peer_id belongs to another connection');
    if (!owner) {
      if (socket.peerIds.size >= config.maxPeerIdsPerSocket) throw new Rejection('too_many_peer_ids', 'PF_ERR_RATE_LIMITED', 'too many peer_ids on one connection');
      // Bind before the first store call, so two sockets racing for one peer_id cannot both win.
      local.owners.set(peerId, socket);
      socket.peerIds.add(peerId);
    }
    const access = yield* settle(this.deps.published.access(infoHash, now));
    if (access === 'unknown') throw new Rejection('unknown_info_hash', 'PF_ERR_FILE_NOT_FOUND', 'info_hash is not published on this tracker');
    const isAnswer = request.answer !== undefined || request.to_peer_id !== undefined;
    // A private file's swarm: every announce proves a live session of it; an answer comes from a member.
    if (access === 'private' && !isAnswer) yield* this.admit(request, infoHash);

    if (isAnswer) {
      yield* this.answer(request, infoHash, peerId, access === 'private');
      return;
    }

    const event = request.event ?? 'update';
    const counts = event === 'stopped' ? yield* this.stop(infoHash, peerId) : yield* this.join(socket, request, infoHash, peerId, now);
    this.countAnnounce(event);
    const response: AnnounceResponse = {
      action: 'announce',
      info_hash: request.info_hash,
      interval: config.announceIntervalSeconds,
      'min interval': Math.max(1, Math.floor(config.announceIntervalSeconds / 2)),
      complete: counts.complete,
      incomplete: counts.incomplete,
    };
    socket.send(JSON.stringify(response));

    if (event !== 'stopped' && request.offers && request.offers.length > 0) yield* this.relayOffers(socket, request, infoHash, peerId, now);
    if (request.pf_session !== undefined) this.updateSession(request, infoHash, event);
  }

  private *admit(request: AnnounceRequest, infoHash: string): Steps {
    const { pf_session: sessionId, pf_proof: proof } = request;
    const proven = sessionId !== undefined && proof !== undefined && (yield* settle(this.deps.sessions.isProven(sessionId, proof, infoHash)));
    if (!proven) throw new Rejection('private_swarm', 'PF_ERR_FORBIDDEN', 'this swarm admits only peers with a download session (pf_session and pf_proof)');
  }

  /** prom-client hashes a label object on every inc(); one child per event skips that. */
  private countAnnounce(event: string): void {
    let counter = this.announceCounters.get(event);
    if (!counter) this.announceCounters.set(event, (counter = this.deps.metrics.announces.labels(event)));
    counter.inc();
  }

  private *join(socket: SwarmSocket, request: AnnounceRequest, infoHash: string, peerId: string, now: number): Generator<Awaiting, SwarmCounts, void> {
    const { config, local, trackerId } = this.deps;
    const existing = local.get(infoHash, peerId);
    if (!existing && socket.memberships.size >= config.maxSwarmsPerSocket) {
      throw new Rejection('too_many_swarms', 'PF_ERR_RATE_LIMITED', 'too many swarms on one connection');
    }
    // Once complete, always complete (a restarted Redis relearns it from our own records).
    const complete = request.left === 0 || request.event === 'completed' || (existing?.complete ?? false);
    const peer = local.add(infoHash, peerId, socket, complete, now);
    if (request.pf_connections !== undefined) peer.connections = request.pf_connections;
    // The swarm's first local peer: listen on its relay channel before the store lists the peer.
    const listening = this.deps.relay.ready(infoHash);
    if (listening) yield* settle(listening);
    let result: UpsertPeerResult;
    try {
      result = yield* settle(this.ops.upsertPeer(infoHash, { peerId, owner: trackerId, complete }, now));
    } catch (error) {
      if (!isPfError(error) || error.code !== 'PF_ERR_STORE_UNAVAILABLE') throw error;
      // Degraded: this process still introduces its own peers to each other.
      this.deps.metrics.rejects.inc({ reason: 'store_unavailable' });
      return local.counts(infoHash);
    }
    if (!result.ok) {
      local.remove(infoHash, peerId);
      throw new Rejection('spoofed_peer_id', 'PF_ERR_UNAUTHORIZED', 'peer_id belongs to a connection on another tracker');
    }
    return result.counts;
  }

  /** An explicit `stopped`: refused if the peer_id belongs to another process. */
  private *stop(infoHash: string, peerId: string): Generator<Awaiting, SwarmCounts, void> {
    const { local, trackerId } = this.deps;
    let result: RemovePeerResult;
    try {
      result = yield* settle(this.ops.removePeer(infoHash, peerId, trackerId));
    } catch (error) {
      if (!isPfError(error)) throw error;
      local.remove(infoHash, peerId);
      return local.counts(infoHash);
    }
    if (!result.ok) throw new Rejection('spoofed_peer_id', 'PF_ERR_UNAUTHORIZED', 'peer_id belongs to a connection on another tracker');
    local.remove(infoHash, peerId);
    return result.counts;
  }

  /** Leave one swarm (close, expiry). Never throws. */
  async leave(infoHash: string, peerId: string): Promise<void> {
    this.deps.local.remove(infoHash, peerId);
    await this.deps.store.removePeer(infoHash, peerId, this.deps.trackerId).catch(() => undefined);
  }

  private *relayOffers(socket: SwarmSocket, request: AnnounceRequest, infoHash: string, peerId: string, now: number): Steps {
    const { config, local, relay, trackerId } = this.deps;
    const offers = request.offers ?? [];
    const wanted = Math.min(offers.length, config.maxOffersPerAnnounce, config.maxNumwant, request.numwant ?? offers.length);
    const count = this.offerBudgets.take(socket.addressGroup, now, wanted);
    if (count < wanted) this.deps.metrics.rejects.inc({ reason: 'offer_budget' }, wanted - count);
    if (count === 0) return;
    let targets: { peerId: string; owner: string }[];
    try {
      targets = yield* settle(this.ops.randomPeers(infoHash, count, peerId));
    } catch {
      targets = local.random(infoHash, count, peerId).map((id) => ({ peerId: id, owner: trackerId }));
    }
    const length = Math.min(targets.length, offers.length);
    for (let index = 0; index < length; index++) {
      const target = targets[index]!;
      const offer = offers[index]!;
      relay.deliver(infoHash, target.peerId, target.owner, {
        action: 'announce',
        info_hash: request.info_hash,
        peer_id: request.peer_id,
        offer_id: offer.offer_id,
        offer: offer.offer,
      });
    }
  }

  /** A store lookup where a failing store counts as "not known there". */
  private *peerRecord(infoHash: string, peerId: string): Generator<Awaiting, PeerRecord | undefined, void> {
    try {
      return yield* settle(this.ops.getPeer(infoHash, peerId));
    } catch {
      return undefined;
    }
  }

  private *answer(request: AnnounceRequest, infoHash: string, peerId: string, isPrivate: boolean): Steps {
    const { local, relay, trackerId } = this.deps;
    if (request.answer === undefined || request.to_peer_id === undefined || request.offer_id === undefined) {
      throw new Rejection('invalid_message', 'PF_ERR_TRACKER_MESSAGE_INVALID', 'an answer needs answer, to_peer_id and offer_id');
    }
    const toPeerId = binaryIdToHex(request.to_peer_id);
    const known = local.get(infoHash, peerId);
    if (known) known.lastSeenMs = Date.now();
    else {
      // Not ours locally: it must not be a live peer of another process either.
      const record = yield* this.peerRecord(infoHash, peerId);
      if (record && record.owner !== trackerId) throw new Rejection('spoofed_peer_id', 'PF_ERR_UNAUTHORIZED', 'peer_id belongs to a connection on another tracker');
      // Only admitted peers (members, joined with a proven session) answer in a private swarm.
      if (isPrivate) throw new Rejection('private_swarm', 'PF_ERR_FORBIDDEN', 'only members of this swarm may answer in it');
    }
    let owner: string | undefined = local.get(infoHash, toPeerId) ? trackerId : undefined;
    if (!owner) owner = (yield* this.peerRecord(infoHash, toPeerId))?.owner;
    if (!owner) throw new Rejection('unknown_to_peer', 'PF_ERR_NOT_FOUND', 'no peer with that to_peer_id');
    relay.deliver(infoHash, toPeerId, owner, {
      action: 'announce',
      info_hash: request.info_hash,
      peer_id: request.peer_id,
      offer_id: request.offer_id,
      answer: request.answer,
    });
  }

  private updateSession(request: AnnounceRequest, infoHash: string, event: string): void {
    const sessionId = request.pf_session!;
    const report = { have: request.pf_have, bytesConfirmed: request.pf_bytes_confirmed, bytesFromPeers: request.pf_from_peers, bytesFromHttp: request.pf_from_http };
    this.deps.sessions.applyAnnounce(sessionId, request.pf_proof, infoHash, report, event).then(
      (outcome) => {
        if (outcome === 'ok') return;
        this.deps.metrics.rejects.inc({ reason: 'session_fields_ignored' });
        // No session id in the line: with its proof it is a capability.
        this.refusals.warn(`session_${outcome}`, {}, `announce session fields ignored: ${outcome}`);
      },
      (error: unknown) => this.refusals.warn('session_failed', { err: (error as Error).message }, 'announce session update failed'),
    );
  }

  async scrape(socket: SwarmSocket, request: ScrapeRequest): Promise<void> {
    const { config, local, store, metrics } = this.deps;
    let hashes: string[];
    if (request.info_hash === undefined) {
      // bittorrent-tracker would list every swarm; we answer for this socket's own swarms.
      hashes = [...new Set([...socket.memberships].map((key) => key.slice(0, 40)))];
    } else {
      hashes = (typeof request.info_hash === 'string' ? [request.info_hash] : request.info_hash).map(binaryIdToHex);
    }
    hashes = hashes.slice(0, config.maxScrapeHashes);
    const response: ScrapeResponse & { flags: { min_request_interval: number } } = {
      action: 'scrape',
      files: {},
      flags: { min_request_interval: config.announceIntervalSeconds },
    };
    for (const infoHash of hashes) {
      const counts = await store.counts(infoHash).catch(() => local.counts(infoHash));
      response.files[hexToBinaryString(infoHash)] = { complete: counts.complete, incomplete: counts.incomplete, downloaded: counts.complete };
    }
    metrics.scrapes.inc();
    socket.send(JSON.stringify(response));
  }
}
