// One origin worker for the benchmark: cluster workers share the port the primary holds.
import { pino } from 'pino';
import { parseSigningKeys } from '../../protocol/index.ts';
import { buildOriginApp } from '../../bin/origin-app.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const keys = parseSigningKeys(env('PF_BENCH_KEYS'));
if (!keys.ok) throw new Error(keys.errors.join('; '));
const port = Number(env('PF_BENCH_PORT'));
const { app } = await buildOriginApp(
  {
    filesDir: env('PF_BENCH_FILES'),
    dataDir: env('PF_BENCH_DATA'),
    publicUrl: `http://127.0.0.1:${port}`,
    urlTtlSeconds: 3600,
    signingKeys: keys.keys,
  },
  { logger: pino({ level: 'warn' }) },
);
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
