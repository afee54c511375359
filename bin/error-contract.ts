import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PfError, isPfError, type ErrorBody, type ErrorCode } from '../protocol/index.ts';

/**
 * The one error contract of every route: `{"error":{"code":"PF_ERR_...","message":...}}`.
 * fastify's own errors (bad URL, long params, body limits, bad JSON, content type) and
 * node's connection-level errors (408, 431, malformed requests) are mapped into it too.
 * Framework messages are never passed on: they quote the URL, which may carry a signature.
 */

/** fastify error codes -> ours. Anything else of status 4xx is PF_ERR_BAD_REQUEST. */
const FRAMEWORK_CODES: Record<string, ErrorCode> = {
  FST_ERR_BAD_URL: 'PF_ERR_BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'PF_ERR_URI_TOO_LONG',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PF_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PF_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PF_ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PF_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'PF_ERR_BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'PF_ERR_INTERNAL',
};

/** node's `clientError` codes -> ours (the request never reached a route). */
const CLIENT_ERROR_CODES: Record<string, ErrorCode> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'PF_ERR_REQUEST_TIMEOUT',
  HPE_HEADER_OVERFLOW: 'PF_ERR_HEADERS_TOO_LARGE',
};

/** A 503 from the store tells clients when to come back even when the store did not say. */
const STORE_RETRY_AFTER_SECONDS = 5;

/** Any error a route or fastify raised, as the PfError clients see. `internal` is true for the ones to log. */
export function toPfError(error: unknown): { pfError: PfError; isInternal: boolean } {
  if (isPfError(error)) return { pfError: error, isInternal: false };
  const fastifyError = error as Partial<FastifyError> | undefined;
  if (fastifyError?.validation) {
    // Ajv's messages name the field and the rule, never the value or the URL.
    return { pfError: new PfError('PF_ERR_VALIDATION', fastifyError.message), isInternal: false };
  }
  const mapped = typeof fastifyError?.code === 'string' ? FRAMEWORK_CODES[fastifyError.code] : undefined;
  if (mapped) return { pfError: new PfError(mapped), isInternal: mapped === 'PF_ERR_INTERNAL' };
  const status = fastifyError?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // e.g. JSON.parse's SyntaxError (400): the message would quote the body.
    return { pfError: new PfError(status === 413 ? 'PF_ERR_PAYLOAD_TOO_LARGE' : 'PF_ERR_BAD_REQUEST'), isInternal: false };
  }
  return { pfError: new PfError('PF_ERR_INTERNAL'), isInternal: true };
}

export function sendPfError(reply: FastifyReply, error: PfError): FastifyReply {
  const retryAfter = error.retryAfterSeconds ?? (error.code === 'PF_ERR_STORE_UNAVAILABLE' ? STORE_RETRY_AFTER_SECONDS : undefined);
  if (retryAfter !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  // A reply that failed after its headers were set must not keep a stale type or length.
  reply.removeHeader('content-length');
  return reply.status(error.statusCode).type('application/json; charset=utf-8').header('cache-control', 'no-store').send(error.toBody());
}

/** fastify's `frameworkErrors` option: errors raised before routing (bad URL, long params). */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  void sendPfError(reply, toPfError(error).pfError);
}

/**
 * fastify's `clientErrorHandler` option: node found the request unusable (timed out, headers
 * too large, not HTTP). Answer in the contract where the socket can still take it, then close.
 */
export function clientErrorHandler(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code = (error.code === undefined ? undefined : CLIENT_ERROR_CODES[error.code]) ?? 'PF_ERR_BAD_REQUEST';
  const pfError = new PfError(code);
  const body = JSON.stringify(pfError.toBody() satisfies ErrorBody);
  this.log.debug({ code: error.code }, 'client error');
  if (socket.writable && !(socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.write(
      `HTTP/1.1 ${pfError.statusCode} ${STATUS_CODES[pfError.statusCode] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Route errors and unknown routes, for the whole app (plugins do not install their own). */
export function installErrorContract(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const { pfError, isInternal } = toPfError(error);
    if (isInternal) logger.error({ err: error }, 'unhandled request error');
    return sendPfError(reply, pfError);
  });
  app.setNotFoundHandler((_request, reply) => sendPfError(reply, new PfError('PF_ERR_NOT_FOUND')));
}
