import type { FastifyInstance } from 'fastify';

/**
 * CORS for publishers' pages on other origins: the catalog, the session API and the signed
 * data plane answer any origin. Nothing rides on cookies (sessions use a bearer token and
 * URLs carry their own signature), so `*` grants no ambient authority. Headers are set on
 * the raw response because the data plane writes its answers with writeHead directly.
 */
const CORS_PATHS = /^\/(files|downloads|d)(\/|$|\?)/;

export function installCors(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!CORS_PATHS.test(request.url)) return;
    const res = reply.raw;
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-expose-headers', 'content-range, content-length, accept-ranges, etag, last-modified, content-disposition');
    if (request.method === 'OPTIONS') {
      res.setHeader('access-control-allow-methods', 'GET, HEAD, POST, PATCH, OPTIONS');
      res.setHeader('access-control-allow-headers', 'authorization, content-type, range, if-range, x-peerfill-grant');
      res.setHeader('access-control-max-age', '86400');
      res.setHeader('vary', 'origin');
      return reply.code(204).send();
    }
  });
}
