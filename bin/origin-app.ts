import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createOrigin, type Origin, type OriginConfig } from '../origin/index.ts';
import { createHttpApp, type HttpLimits } from './http-app.ts';

/** For tests and benches: the origin's routes in an app with the server's limits and error contract, not listening. */
export async function buildOriginApp(
  config: OriginConfig,
  deps?: { logger?: Logger; limits?: Partial<HttpLimits> },
): Promise<{ app: FastifyInstance; origin: Origin }> {
  const logger = deps?.logger ?? pino({ level: 'silent' });
  const origin = await createOrigin(config, { logger });
  const app = createHttpApp(logger, deps?.limits);
  await app.register(origin.plugin);
  app.addHook('onClose', async () => origin.close());
  return { app, origin };
}
