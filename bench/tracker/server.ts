// One tracker under load, in its own process: `node --import tsx server.ts <peerfill|bittorrent-tracker> <port>`.
// Prints READY when listening. Runs until killed.
import { fastify } from 'fastify';
import { pino } from 'pino';
import { Server } from 'bittorrent-tracker';
import { parseSigningKeys, type FileDirectory } from '../../protocol/index.ts';
import { createSigningMinter, createStore, createTracker } from '../../tracker/index.ts';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);

if (kind === 'bittorrent-tracker') {
  const server = new Server({ udp: false, http: false, ws: true, stats: false });
  server.on('warning', () => undefined);
  server.on('error', (error: Error) => process.stderr.write(`bittorrent-tracker error: ${error.message}\n`));
  server.listen(port, '127.0.0.1', () => process.stdout.write('READY\n'));
} else if (kind === 'peerfill') {
  const logger = pino({ level: 'silent' });
  // Open tracker: bittorrent-tracker has no published-files filter either.
  const directory: FileDirectory = { getByFileId: () => Promise.resolve(undefined), getByInfoHash: () => Promise.resolve(undefined) };
  const keys = parseSigningKeys('bench:bench-secret-0123456789');
  if (!keys.ok) throw new Error(keys.errors.join('; '));
  const store = await createStore({ kind: 'memory' }, { logger });
  const tracker = await createTracker(
    // Every bench client is on 127.0.0.1: the per-address limits would measure themselves.
    { publicTrackerUrl: `ws://127.0.0.1:${port}/announce`, originUrl: `http://127.0.0.1:${port}`, open: true, maxConnectionsPerAddress: 1_000_000, maxRelayedOffersPerAddressPerSecond: 1e9, relayedOfferBurstPerAddress: 1e9 },
    { directory, minter: createSigningMinter({ publicUrl: 'http://cdn.invalid', keys: keys.keys, directory }), store, logger },
  );
  const app = fastify({ logger: false });
  await app.register(tracker.plugin);
  await app.listen({ port, host: '127.0.0.1' });
  process.stdout.write('READY\n');
} else {
  process.stderr.write(`unknown tracker kind ${kind}\n`);
  process.exit(2);
}
// Exit cleanly on SIGINT so `node --cpu-prof` can write its profile.
process.once('SIGINT', () => process.exit(0));
