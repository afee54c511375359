import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PfError, SIGNED_URL_PREFIX, type ErrorBody } from '../../protocol/index.ts';
import type { Catalog, CatalogEntry } from '../publish/catalog.ts';
import { evaluatePreconditions, httpDate, ifRangeAllowsRange } from './conditional.ts';
import { contentDisposition } from './content-disposition.ts';
import type { EgressLimiter } from './egress-limiter.ts';
import { multipartLayout } from './multipart.ts';
import { contentRange, parseRange, unsatisfiedContentRange, type ByteRange } from './range.ts';
import type { UrlSigner } from '../signing/signer.ts';
import type { StorageHandle } from '../storage/storage.ts';

/**
 * The signed data plane: `GET|HEAD /d/<file_id>/<name>?exp=&kid=&sig=`.
 *
 * Caching: responses carry `Cache-Control: public, max-age=600` plus a strong ETag and
 * Last-Modified, so a CDN may cache by PATH. The signature query must NOT be part of the
 * CDN cache key (every client has a different one, and it would defeat the cache), and the
 * edge must still verify the signature of every request, cached or not (deploy/nginx does it
 * with the same string to sign). A changed file keeps its path, so the TTL stays short;
 * clients verify every chunk against the manifest, so a stale edge copy is caught, not trusted.
 * Errors (403/404/416) are `no-store`.
 */
export interface DataPlaneOptions {
  catalog: Catalog;
  signer: UrlSigner;
  limiter: EgressLimiter | undefined;
  logger: Logger;
  nowSeconds?: () => number;
}

const CACHE_CONTROL = 'public, max-age=600';
/**
 * Single ranges are read in pieces of this size into pooled buffers (one piece: one buffer).
 * A reader that stops reading pins two pieces until the idle timeout closes it. (256 KiB
 * pieces pinned a quarter of that, but changed how the hybrid swarm test's clients split
 * chunks between peers and HTTP: the origin sent 2.1x the file instead of 0.8x. Kept at
 * 1 MiB until that is understood.) A piece is also the unit of progress the idle timeout
 * sees: node counts a write as activity once it is all with the kernel.
 */
const POOLED_READ_BYTES = 1024 * 1024;
/** Read buffers kept for reuse by one process: one or two per concurrent response. */
const MAX_POOLED_READ_BUFFERS = 32;
const readBuffers: Buffer[] = [];
/** Multipart answers up to this size are assembled by positional reads and sent as one write. */
const SMALL_MULTIPART_BYTES = 256 * 1024;
/** Streams (S3, multipart parts) hold at most this much read ahead of a stalled socket. */
const STREAM_HIGH_WATER_MARK_BYTES = 256 * 1024;

function errorReply(reply: FastifyReply, error: PfError, headers: Record<string, string> = {}): FastifyReply {
  const body: ErrorBody = error.toBody();
  return reply.code(error.statusCode).headers({ 'cache-control': 'no-store', ...headers }).send(body);
}

/** `/d/<id>/<name>` -> its decoded parts, or undefined. */
function parseDataPath(path: string): { fileId: string; name: string } | undefined {
  const rest = path.slice(SIGNED_URL_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  try {
    return { fileId: decodeURIComponent(rest.slice(0, slash)), name: decodeURIComponent(rest.slice(slash + 1)) };
  } catch {
    return undefined;
  }
}

export function registerDataPlane(app: FastifyInstance, options: DataPlaneOptions): void {
  const { catalog, signer, limiter, logger } = options;
  const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const url = request.raw.url ?? '';
    const queryAt = url.indexOf('?');
    // The signature covers the path exactly as sent (percent-encoding included).
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    const outcome = signer.verify(request.method, path, request.query, nowSeconds());
    if (outcome !== 'ok') return errorReply(reply, new PfError(outcome));
    const parts = parseDataPath(path);
    const entry = parts && catalog.get(parts.fileId);
    if (!parts || !entry || entry.manifest.name !== parts.name) return errorReply(reply, new PfError('PF_ERR_FILE_NOT_FOUND'));
    const handle = await entry.storage.open(entry.key, entry.stat);
    if (!handle) return errorReply(reply, new PfError('PF_ERR_FILE_NOT_FOUND'));
    if (handle.etag !== entry.stat.etag) catalog.noteChanged(entry.fileId);
    reply.hijack();
    await respond(request, reply.raw, entry, handle).catch((error: unknown) => {
      logger.debug({ err: error, fileId: entry.fileId }, 'data-plane response ended early');
      // Rewritten while served: the response ends here, and the manifest is rebuilt.
      if (error instanceof FileChangedError) catalog.noteChanged(entry.fileId);
      if (!reply.raw.headersSent) {
        const pfError = error instanceof PfError ? error : new PfError('PF_ERR_UPSTREAM');
        reply.raw.writeHead(pfError.statusCode, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        reply.raw.end(JSON.stringify(pfError.toBody()));
      } else {
        reply.raw.destroy();
      }
    });
    return undefined;
  };

  async function respond(request: FastifyRequest, res: ServerResponse, entry: CatalogEntry, handle: StorageHandle): Promise<void> {
    const abort = new AbortController();
    if (res.destroyed) {
      await handle.close();
      return;
    }
    // Client gone (or response done): stop reading and release the file / S3 stream at once.
    res.once('close', () => {
      abort.abort();
      void handle.close();
    });
    const size = handle.sizeBytes;
    const headers: Record<string, string | number> = {
      'accept-ranges': 'bytes',
      etag: handle.etag,
      'last-modified': httpDate(handle.mtimeMs),
      'cache-control': CACHE_CONTROL,
    };
    const precondition = evaluatePreconditions(request.headers, handle);
    if (precondition === 'not-modified') {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    if (precondition === 'failed') {
      const body = JSON.stringify(new PfError('PF_ERR_PRECONDITION_FAILED').toBody());
      res.writeHead(412, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    const contentType = entry.manifest.content_type;
    headers['content-disposition'] = contentDisposition(entry.manifest.name);
    headers['x-content-type-options'] = 'nosniff';
    const decision = ifRangeAllowsRange(request.headers['if-range'], handle) ? parseRange(request.headers.range, size) : { kind: 'full' as const };
    const isHead = request.method === 'HEAD';

    if (decision.kind === 'unsatisfiable') {
      const body = JSON.stringify(new PfError('PF_ERR_RANGE_NOT_SATISFIABLE').toBody());
      res.writeHead(416, { 'content-range': unsatisfiedContentRange(size), 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(isHead ? undefined : body);
      return;
    }
    if (decision.kind === 'partial' && decision.ranges.length > 1) {
      const layout = multipartLayout(decision.ranges, size, contentType);
      res.writeHead(206, { ...headers, 'content-type': layout.contentType, 'content-length': layout.contentLength });
      if (isHead) return void res.end();
      if (handle.readInto && layout.contentLength <= SMALL_MULTIPART_BYTES) {
        // A small answer (many tiny ranges) is read by positional reads and sent as one write:
        // a stream and two writes per part cost 50x a single range's CPU for 100 one-byte ranges.
        const body = Buffer.allocUnsafe(layout.contentLength);
        // Ranges that lie close together are one read of the span they cover.
        const spanStart = Math.min(...layout.parts.map((part) => part.range.start));
        const spanEnd = Math.max(...layout.parts.map((part) => part.range.end));
        const span = spanEnd - spanStart < SMALL_MULTIPART_BYTES ? Buffer.allocUnsafe(spanEnd - spanStart + 1) : undefined;
        if (span && (await handle.readInto(span, spanStart)) < span.length) throw new FileChangedError();
        let offset = 0;
        for (const part of layout.parts) {
          offset += part.header.copy(body, offset);
          const lengthBytes = part.range.end - part.range.start + 1;
          if (span) span.copy(body, offset, part.range.start - spanStart, part.range.end - spanStart + 1);
          else if ((await handle.readInto(body.subarray(offset, offset + lengthBytes), part.range.start)) < lengthBytes) throw new FileChangedError();
          offset += lengthBytes;
        }
        layout.trailer.copy(body, offset);
        await assertUnchanged(handle);
        res.end(body);
        return;
      }
      for (const part of layout.parts) {
        await write(res, part.header, abort.signal);
        await copyRange(handle, part.range, res, abort.signal);
      }
      await assertUnchanged(handle);
      res.end(layout.trailer);
      return;
    }
    const range: ByteRange = decision.kind === 'partial' ? decision.ranges[0]! : { start: 0, end: size - 1 };
    const lengthBytes = size === 0 ? 0 : range.end - range.start + 1;
    headers['content-type'] = contentType;
    headers['content-length'] = lengthBytes;
    if (decision.kind === 'partial') headers['content-range'] = contentRange(range, size);
    res.writeHead(decision.kind === 'partial' ? 206 : 200, headers);
    if (isHead || lengthBytes === 0) return void res.end();
    if (handle.readInto) {
      await sendPooled(handle.readInto.bind(handle), () => assertUnchanged(handle), range, res, abort.signal);
      return;
    }
    const source = await handle.createReadStream(range.start, range.end, { signal: abort.signal, highWaterMarkBytes: STREAM_HIGH_WATER_MARK_BYTES });
    if (limiter) await pipeline(source, limiter.throttle(), res);
    else await pipeline(source, res);
  }

  /**
   * One range through pooled buffers, in pieces of up to 1 MiB: one buffer for a small range;
   * for a larger one two, each written while the other is read. A stream's fresh buffer per
   * read cost a page fault per 4 KiB as it was filled, and garbage to collect. A buffer goes
   * back to the pool only once its read and its write are both over, so a client that leaves
   * mid-response never has another request's bytes read into a buffer still being sent.
   */
  async function sendPooled(
    readInto: (target: Uint8Array, start: number) => Promise<number>,
    checkUnchanged: () => Promise<void>,
    range: ByteRange,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    const end = range.end + 1;
    const slots = Array.from({ length: end - range.start > POOLED_READ_BYTES ? 2 : 1 }, () => ({
      buffer: readBuffers.pop() ?? Buffer.allocUnsafeSlow(POOLED_READ_BYTES),
      written: Promise.resolve(),
      isEnding: false,
    }));
    const release = (buffer: Buffer) => {
      if (readBuffers.length < MAX_POOLED_READ_BUFFERS) readBuffers.push(buffer);
    };
    try {
      for (let position = range.start, piece = 0; position < end; piece++) {
        const slot = slots[piece % slots.length]!;
        await slot.written;
        const bytes = slot.buffer.subarray(0, Math.min(POOLED_READ_BYTES, end - position));
        if ((await readInto(bytes, position)) < bytes.length) throw new FileChangedError();
        // After the read: bytes of a rewrite are never sent under the old ETag.
        await checkUnchanged();
        // Under an egress cap, in slices: a whole piece at once would burst past the cap, and a
        // client that leaves mid-run would have been sent all of it. The last slice carries the
        // completion (a socket completes writes in order).
        const tail = limiter ? await limiter.paceSlices(bytes, (slice) => void res.write(slice), signal) : bytes;
        signal.throwIfAborted();
        position += bytes.length;
        if (position < end) {
          slot.written = flushed(res, tail);
          // Observed here; awaited (and rethrown) before the buffer is used again.
          slot.written.catch(() => undefined);
          continue;
        }
        // The last piece ends the response; its buffer comes back once the response is over.
        slot.isEnding = true;
        res.once('close', () => release(slot.buffer));
        res.end(tail);
      }
    } finally {
      for (const slot of slots) {
        if (!slot.isEnding) void slot.written.then(() => release(slot.buffer), () => undefined);
      }
    }
  }

  /** One range into a response that stays open (multipart): honours backpressure and disconnects. */
  async function copyRange(handle: StorageHandle, range: ByteRange, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const source: Readable = await handle.createReadStream(range.start, range.end, { signal, highWaterMarkBytes: STREAM_HIGH_WATER_MARK_BYTES });
    const paced = limiter ? source.pipe(limiter.throttle()) : source;
    try {
      for await (const chunk of paced) {
        if (!(chunk instanceof Uint8Array)) throw new Error('storage stream produced a non-byte chunk');
        await assertUnchanged(handle);
        await write(res, chunk, signal);
      }
    } finally {
      source.destroy();
      paced.destroy();
    }
  }

  app.route({ method: 'GET', url: `${SIGNED_URL_PREFIX}*`, exposeHeadRoute: false, handler });
  app.route({ method: 'HEAD', url: `${SIGNED_URL_PREFIX}*`, handler });
}

/** The file is not what its handle (and the response's ETag) stood for any more. */
class FileChangedError extends PfError {
  constructor() {
    super('PF_ERR_UPSTREAM', 'the file changed while it was served');
  }
}

async function assertUnchanged(handle: StorageHandle): Promise<void> {
  if (handle.hasChanged && (await handle.hasChanged())) throw new FileChangedError();
}

/** Write `bytes`; resolves once they are with the kernel (until then they must not change). */
function flushed(res: ServerResponse, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(bytes, (error) => (error ? reject(error) : resolve()));
  });
}

async function write(res: ServerResponse, chunk: Uint8Array, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  if (!res.write(chunk)) await once(res, 'drain', { signal });
}
