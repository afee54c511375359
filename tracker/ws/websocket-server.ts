import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { parseJson, trackerRequestCodec, type TrackerRequest } from '../../protocol/index.ts';
import { Rejection, failureFrame, type AnnounceHandler } from '../swarm/announce.ts';
import { addressGroupOf, type AddressGroup } from '../client-address.ts';
import type { ResolvedTrackerConfig } from '../config.ts';
import type { TrackerMetrics } from '../metrics.ts';
import { SampledWarn } from '../sampled-warn.ts';
import { SendBatch } from './send-batch.ts';
import type { Store } from '../store/store.ts';
import { SwarmSocket, type LocalSwarms } from './swarm-socket.ts';

export const ANNOUNCE_PATH = '/announce';
/** Over-limit messages in a row after which a socket is closed rather than merely refused. */
const MAX_DROPPED_IN_A_ROW = 200;

/**
 * The WebSocket side of the tracker: accepts upgrades on /announce, checks every frame
 * with the protocol codecs and the limits, hands valid ones to the AnnounceHandler, and
 * sweeps out idle sockets and peers that missed their announces.
 */
export class TrackerWebSocketServer {
  readonly sockets = new Set<SwarmSocket>();
  private readonly wss: WebSocketServer;
  private readonly batch = new SendBatch();
  /** Open sockets per client address group (addressGroup); a group leaves the map with its last socket. */
  private readonly perAddress = new Map<AddressGroup, number>();
  private readonly refusals: SampledWarn;
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastStorePruneMs = Date.now();
  private closing = false;

  constructor(
    private readonly config: ResolvedTrackerConfig,
    private readonly deps: { local: LocalSwarms; handler: AnnounceHandler; store: Store; metrics: TrackerMetrics; logger: Logger },
  ) {
    this.refusals = new SampledWarn(deps.logger);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxPayloadBytes, perMessageDeflate: false, clientTracking: false });
  }

  start(): void {
    const sweepMs = Math.max(500, Math.min(this.config.peerTtlMs / 3, 30_000));
    this.sweepTimer = setInterval(() => void this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  /** The http server's `upgrade` listener. Returns false for paths that are not ours. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (request.url ?? '').split('?', 1)[0];
    if (path !== ANNOUNCE_PATH) return false;
    if (this.closing || this.sockets.size >= this.config.maxConnections) {
      this.deps.metrics.rejects.inc({ reason: 'too_many_connections' });
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return true;
    }
    // The socket's peer, or with trusted proxies in front, the client they forwarded for; an IPv6 client by its /64.
    const address = addressGroupOf(request, this.config.trustProxy);
    const held = this.perAddress.get(address) ?? 0;
    if (held >= this.config.maxConnectionsPerAddress) {
      this.deps.metrics.rejects.inc({ reason: 'too_many_connections_per_address' });
      this.refusals.warn('too_many_connections_per_address', {}, 'tracker connection refused: too many from one address');
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 10\r\nContent-Length: 0\r\n\r\n');
      return true;
    }
    // Counted from the upgrade on, so a burst of handshakes cannot overshoot the cap.
    this.perAddress.set(address, held + 1);
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    };
    socket.once('close', release);
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws, socket, address));
    return true;
  }

  private onConnection(ws: WebSocket, stream: Duplex, address: AddressGroup): void {
    const socket = new SwarmSocket(ws, stream, this.batch, this.config, Date.now(), address);
    this.sockets.add(socket);
    ws.on('message', (data, isBinary) => this.onMessage(socket, data, isBinary));
    ws.on('error', (error) => this.deps.logger.debug({ socket: socket.id, err: error.message }, 'socket error'));
    ws.on('close', () => this.onClose(socket));
  }

  private reject(socket: SwarmSocket, rejection: Rejection, infoHash?: string): void {
    this.deps.metrics.rejects.inc({ reason: rejection.reason });
    this.refusals.warn(rejection.reason, { socket: socket.id }, `tracker frame refused: ${rejection.message}`);
    socket.send(JSON.stringify(failureFrame(rejection, infoHash)));
  }

  private onMessage(socket: SwarmSocket, data: RawData, isBinary: boolean): void {
    const now = Date.now();
    socket.lastMessageMs = now;
    if (!socket.takeToken(now) || socket.pending >= this.config.messageBurst) {
      this.deps.metrics.rejects.inc({ reason: 'rate_limited' });
      if (++socket.droppedInARow > MAX_DROPPED_IN_A_ROW) {
        socket.close(1008, 'rate limit');
        return;
      }
      if (socket.shouldReportRateLimit(now)) {
        socket.send(JSON.stringify(failureFrame(new Rejection('rate_limited', 'PF_ERR_RATE_LIMITED', 'too many messages'))));
      }
      return;
    }
    socket.droppedInARow = 0;
    if (isBinary) return this.reject(socket, new Rejection('binary_frame', 'PF_ERR_TRACKER_MESSAGE_INVALID', 'binary frames are not accepted'));
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : data.toString('utf8');
    const parsed = parseJson(text);
    if (!parsed.ok) return this.reject(socket, new Rejection('invalid_json', 'PF_ERR_TRACKER_MESSAGE_INVALID', 'invalid JSON'));
    const decoded = trackerRequestCodec.decode(parsed.value);
    if (!decoded.ok) {
      const rejection = new Rejection('invalid_message', 'PF_ERR_TRACKER_MESSAGE_INVALID', `invalid tracker message: ${decoded.errors[0] ?? ''}`.slice(0, 200));
      return this.reject(socket, rejection);
    }
    const request = decoded.value;
    if (socket.pending > 0) {
      // An earlier frame of this socket waits on the store: keep the order.
      socket.pending++;
      socket.queue = socket.queue.then(() => (socket.closed ? undefined : this.dispatch(socket, request))).finally(() => socket.pending--);
      return;
    }
    const pending = this.dispatch(socket, request);
    if (pending) {
      socket.pending++;
      socket.queue = pending.finally(() => socket.pending--);
    }
  }

  /** Handle one frame: synchronously when the store allows, else the returned promise settles when done. Never rejects. */
  private dispatch(socket: SwarmSocket, request: TrackerRequest): Promise<void> | undefined {
    try {
      const pending = request.action === 'announce' ? this.deps.handler.announce(socket, request) : this.deps.handler.scrape(socket, request);
      return pending?.catch((error: unknown) => this.fail(socket, request, error));
    } catch (error) {
      this.fail(socket, request, error);
      return undefined;
    }
  }

  private fail(socket: SwarmSocket, request: TrackerRequest, error: unknown): void {
    const infoHash = request.action === 'announce' ? request.info_hash : undefined;
    if (error instanceof Rejection) return this.reject(socket, error, infoHash);
    this.deps.logger.error({ socket: socket.id, err: error }, 'tracker message failed');
    this.reject(socket, new Rejection('store_unavailable', 'PF_ERR_STORE_UNAVAILABLE', 'the tracker could not handle this message'), infoHash);
  }

  private onClose(socket: SwarmSocket): void {
    socket.closed = true;
    this.sockets.delete(socket);
    const { local, handler } = this.deps;
    for (const key of [...socket.memberships]) void handler.leave(key.slice(0, 40), key.slice(40));
    for (const peerId of socket.peerIds) if (local.owners.get(peerId) === socket) local.owners.delete(peerId);
    socket.peerIds.clear();
  }

  /** Drop idle sockets and peers that missed their announces; prune the store now and then. */
  async sweep(): Promise<void> {
    const now = Date.now();
    const { local, handler, store, metrics } = this.deps;
    for (const socket of this.sockets) {
      if (now - socket.lastMessageMs > this.config.idleTimeoutMs) {
        metrics.rejects.inc({ reason: 'idle_timeout' });
        socket.close(1000, 'idle timeout');
      }
    }
    const cutoff = now - this.config.peerTtlMs;
    const expired: [string, string][] = [];
    for (const [infoHash, swarm] of local.swarms) {
      for (const [peerId, peer] of swarm) if (peer.lastSeenMs < cutoff) expired.push([infoHash, peerId]);
    }
    for (const [infoHash, peerId] of expired) {
      metrics.peersExpired.inc();
      await handler.leave(infoHash, peerId);
    }
    // Peers of crashed processes linger in a shared store until somebody prunes them.
    if (now - this.lastStorePruneMs >= this.config.peerTtlMs) {
      this.lastStorePruneMs = now;
      await store.prunePeers(cutoff).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const socket of this.sockets) socket.ws.terminate();
    await Promise.all([...this.sockets].map((socket) => socket.queue));
    this.wss.close();
  }
}
