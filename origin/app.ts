import { LogController, fastify, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { PfError, isPfError, type ErrorBody } from '../protocol/index.ts';
import { createOrigin, type Origin, type OriginConfig } from './index.ts';

/** `{error:{code,message}}` for every failure; internals (stacks, S3 keys) are logged, never sent. */
export function installOriginErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (isPfError(error)) return reply.status(error.statusCode).send(error.toBody());
    if (error.validation) {
      const body: ErrorBody = { error: { code: 'PF_ERR_VALIDATION', message: error.message } };
      return reply.status(400).send(body);
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      const body: ErrorBody = { error: { code: 'PF_ERR_BAD_REQUEST', message: 'The request is malformed' } };
      return reply.status(error.statusCode).send(body);
    }
    logger.error({ err: error }, 'unhandled request error');
    return reply.status(500).send(new PfError('PF_ERR_INTERNAL').toBody());
  });
  app.setNotFoundHandler((_request, reply) => reply.status(404).send(new PfError('PF_ERR_NOT_FOUND').toBody()));
}

/** For tests and benches: a fastify app with the origin's routes and error handling, not listening. */
export async function buildOriginApp(config: OriginConfig, deps?: { logger?: Logger }): Promise<{ app: FastifyInstance; origin: Origin }> {
  const logger = deps?.logger ?? pino({ level: 'silent' });
  const origin = await createOrigin(config, { logger });
  // Request logging stays off: request URLs carry signatures.
  const httpLogger: FastifyBaseLogger = logger.child({ component: 'http' });
  const app = fastify({ loggerInstance: httpLogger, logController: new LogController({ disableRequestLogging: true }) });
  installOriginErrorHandler(app, logger);
  await app.register(origin.plugin);
  app.addHook('onClose', async () => origin.close());
  return { app, origin };
}
