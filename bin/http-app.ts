import { LogController, fastify, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { TRUST_NO_PROXY, type ProxyTrust } from '../tracker/index.ts';
import { clientErrorHandler, frameworkErrors, installErrorContract } from './error-contract.ts';
import type { TlsCredentials } from './tls.ts';

/**
 * Per-connection bounds of every HTTP server peerfill runs (API and data plane alike).
 * None of them bounds the total time of a response: a slow download of a 50 GB file runs as
 * long as it keeps moving; a reader that stops reading is cut after `idleTimeoutMs`.
 */
export interface HttpLimits {
  /** The request line and headers must arrive within this. */
  headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this; then 408. */
  requestTimeoutMs: number;
  /** A connection on which nothing moves either way for this long is closed: a stalled reader, a silent uploader. */
  idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** The largest body accepted; bigger ones get 413 before they are read. */
  bodyLimitBytes: number;
}

/**
 * The largest valid body is a PATCH carrying a bitfield of 2^16 base64url characters (the
 * HaveSchema bound, ~393k chunks) and every counter: 65,536 + 148 bytes. 72 KiB holds it.
 * test/bin/http-app.test.ts measures that body against this limit.
 */
export const BODY_LIMIT_BYTES = 72 * 1024;

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 10_000,
  bodyLimitBytes: BODY_LIMIT_BYTES,
};

/**
 * A fastify app with peerfill's limits and its one error contract, not yet listening.
 * Request logging stays off: request URLs carry signatures. `trustProxy` is the tracker's
 * predicate too, so `request.ip` names the same client as the tracker's per-address limits.
 * With `tls`, the same app over HTTPS (HTTP/1.1): the same limits, and WebSocket upgrades (wss).
 *
 * Not HTTP/2, although fastify has `http2: true` (with `allowHTTP1`, node still emits `upgrade`
 * for wss): the data plane hijacks the reply and writes node's http1 ServerResponse directly,
 * reusing a read buffer once its write callback says the bytes are with the kernel, which an
 * HTTP/2 stream (frames queued in the session) does not promise; `headersTimeout`,
 * `requestTimeout` and the per-connection idle bound that HttpLimits stand for are http1-server
 * settings an HTTP/2 session does not apply; and `peerfill get` speaks HTTP/1.1 only (its own
 * zero-copy connection). HTTP/2 would need its own data-plane writer and its own limits.
 */
/** An app over HTTP or HTTPS: an https.Server is an http.Server to all peerfill does with it (listen, address, upgrade, close). */
export type PeerfillApp = FastifyInstance<HttpServer | HttpsServer>;

export function createHttpApp(logger: Logger, limits: Partial<HttpLimits> = {}, options: { trustProxy?: ProxyTrust; tls?: TlsCredentials } = {}): PeerfillApp {
  const resolved = { ...DEFAULT_HTTP_LIMITS, ...limits };
  const httpLogger: FastifyBaseLogger = logger.child({ component: 'http' });
  // node checks headersTimeout and requestTimeout on this interval; its default 30 s would blur a 10 s bound.
  const serverOptions = { headersTimeout: Math.min(resolved.headersTimeoutMs, resolved.requestTimeoutMs), connectionsCheckingInterval: Math.min(1000, resolved.headersTimeoutMs) };
  const common = {
    loggerInstance: httpLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: resolved.bodyLimitBytes,
    requestTimeout: resolved.requestTimeoutMs,
    connectionTimeout: resolved.idleTimeoutMs,
    keepAliveTimeout: resolved.keepAliveTimeoutMs,
    frameworkErrors,
    clientErrorHandler,
    ...(options.trustProxy !== undefined && options.trustProxy !== TRUST_NO_PROXY ? { trustProxy: options.trustProxy } : {}),
    // Schemas mean what they say: no silent dropping of unknown fields, no "5" taken for 5.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  };
  // fastify hands `https` (not `http`) to https.createServer, so the server bounds go in there.
  const app: PeerfillApp = options.tls
    ? fastify({ ...common, https: { ...serverOptions, cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ['http/1.1'] } })
    : fastify({ ...common, http: serverOptions });
  installErrorContract(app, logger);
  return app;
}
