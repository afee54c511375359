import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  CreateDownloadBodySchema,
  CreateDownloadResponseSchema,
  PatchDownloadBodySchema,
  ProgressSchema,
  SessionParamsSchema,
  SessionStateSchema,
  type CreateDownloadBody,
  type PatchDownloadBody,
} from '../../protocol/index.ts';
import { addressGroupOf, type ProxyTrust } from '../client-address.ts';
import type { SessionService } from './sessions.ts';

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

interface IdRoute {
  Params: { id: string };
}

/**
 * REST for download sessions. Params, bodies and answers are the protocol's schemas (fastify
 * checks and serializes them); a body that does not match is 400 PF_ERR_VALIDATION.
 */
export function registerDownloadRoutes(app: FastifyInstance, sessions: SessionService, trustProxy: ProxyTrust): void {
  app.post<{ Body: CreateDownloadBody }>('/downloads', { schema: { body: CreateDownloadBodySchema, response: { 201: CreateDownloadResponseSchema } } }, async (request, reply) => {
    const apiKey = request.headers['x-peerfill-key'];
    const created = await sessions.create(request.body, { addressGroup: addressGroupOf(request.raw, trustProxy), apiKey: typeof apiKey === 'string' ? apiKey : undefined });
    return noStore(reply).status(201).send(created);
  });
  app.get<IdRoute>('/downloads/:id', { schema: { params: SessionParamsSchema, response: { 200: SessionStateSchema } } }, async (request, reply) => {
    return noStore(reply).send(await sessions.get(request.params.id, request.headers.authorization));
  });
  app.get<IdRoute>('/downloads/:id/progress', { schema: { params: SessionParamsSchema, response: { 200: ProgressSchema } } }, async (request, reply) => {
    return noStore(reply).send(await sessions.progress(request.params.id, request.headers.authorization));
  });
  app.patch<IdRoute & { Body: PatchDownloadBody }>(
    '/downloads/:id',
    { schema: { params: SessionParamsSchema, body: PatchDownloadBodySchema, response: { 200: SessionStateSchema } } },
    async (request, reply) => {
      return noStore(reply).send(await sessions.patch(request.params.id, request.headers.authorization, request.body));
    },
  );
}
