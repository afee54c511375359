import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { createCodec } from '../protocol/index.ts';
import type { SessionService } from './sessions.ts';

const ParamsSchema = Type.Object({ id: Type.String({ maxLength: 128 }) });
const paramsCodec = createCodec(ParamsSchema);

function sessionId(request: FastifyRequest): string {
  // The router always supplies :id; an odd value simply finds no session.
  const decoded = paramsCodec.decode(request.params);
  return decoded.ok ? decoded.value.id : '';
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

/** REST for download sessions. Bodies are checked by the protocol codecs in SessionService. */
export function registerDownloadRoutes(app: FastifyInstance, sessions: SessionService): void {
  app.post('/downloads', async (request, reply) => {
    const created = await sessions.create(request.body);
    return noStore(reply).status(201).send(created);
  });
  app.get('/downloads/:id', async (request, reply) => {
    return noStore(reply).send(await sessions.get(sessionId(request), request.headers.authorization));
  });
  app.get('/downloads/:id/progress', async (request, reply) => {
    return noStore(reply).send(await sessions.progress(sessionId(request), request.headers.authorization));
  });
  app.patch('/downloads/:id', async (request, reply) => {
    return noStore(reply).send(await sessions.patch(sessionId(request), request.headers.authorization, request.body));
  });
}
