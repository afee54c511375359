import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, SERVER_OPTIONS, loadServerConfig, originConfigFrom, type ServerConfig } from './config.ts';
import type { Logger } from 'pino';

/** pino only where a command logs: `get` and `seed` print their own progress and errors. */
async function createLogger(level: string): Promise<Logger> {
  return (await import('./logger.ts')).createLogger(level);
}

/** `peerfill <command>`: the only place that reads the environment, listens and handles signals. */
const USAGE = `peerfill — peer-assisted hybrid CDN

  peerfill serve [--files DIR] [--port N] [--host H] [--data-dir DIR] [--public-url URL]
                 [--redis URL] [--egress-limit BYTES_PER_S] [--url-ttl S] [--open]
                 [--rescan-interval S]   (SIGHUP rescans the catalog at once)
                 [--trust-proxy CIDR,...]   (proxies whose X-Forwarded-For names the client)
                 [--workers N [--data-port P]]   (the /d/ data plane in N processes on P, default port+1)
                 [--tls-cert FILE --tls-key FILE]   (HTTPS and wss; PEM files)
  peerfill tracker --origin URL [--port N] [--host H] [--redis URL] [--open] [--trust-proxy CIDR,...]
                   [--tls-cert FILE --tls-key FILE]
  peerfill add PATH|s3://bucket/key [--private] [--data-dir DIR]
  peerfill sign FILE_ID [--expires-in SECONDS]
  peerfill grant FILE_ID --user USER [--expires-in SECONDS]
  peerfill get URL [-o OUT] [--json] [--no-peers] [--seed SECONDS]
  peerfill seed FILE --server URL [--file-id ID]

--redis URL (or REDIS_URL): redis://host:port for one Redis server, or a Redis Cluster as
redis+cluster://host:port,host:port,... (rediss+cluster:// for TLS; comma-separated
redis:// seed URLs work too). Without it, the store is in memory.

Environment: PEERFILL_SIGNING_KEYS (kid:secret,...), PEERFILL_DATA_DIR, PEERFILL_PUBLIC_URL,
PEERFILL_FILES_DIR, PEERFILL_PORT, PEERFILL_HOST, REDIS_URL, PEERFILL_S3_BUCKET,
PEERFILL_S3_PREFIX, PEERFILL_S3_ENDPOINT, PEERFILL_S3_REGION, PEERFILL_S3_PRESIGN,
PEERFILL_EGRESS_BYTES_PER_SECOND, PEERFILL_LOG_LEVEL, PEERFILL_PUBLISHER_KEYS (kid:secret,...),
PEERFILL_DEFAULT_VISIBILITY, PEERFILL_PRIVATE_PREFIXES, PEERFILL_TRUST_PROXY, PEERFILL_TLS_CERT,
PEERFILL_TLS_KEY. A client trusts a private CA with NODE_EXTRA_CA_CERTS=ca.pem. See README.md.
`;

const EXIT_USAGE = 2;

function onShutdown(close: () => Promise<void>, log: (message: string) => void): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    log(`${signal}: shutting down`);
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`shutdown failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function serve(config: ServerConfig): Promise<number> {
  const cluster = (await import('node:cluster')).default;
  // Before anything is opened: a bad certificate or key is exit 2 with nothing left running.
  const tls = config.tls && (await (await import('./tls.ts')).loadTlsCredentials(config.tls));
  if (cluster.isWorker) return (await import('./serve-workers.ts')).runDataPlaneWorker(config, await createLogger(config.logLevel), tls);
  const { buildServer } = await import('./serve.ts');
  // `npm start` on a fresh clone: the default folder may not exist yet.
  if (!config.s3) await mkdir(config.filesDir, { recursive: true });
  const logger = await createLogger(config.logLevel);
  const server = await buildServer(config, logger, { tls });
  await server.app.listen({ port: config.port, host: config.host });
  const address = server.app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = config.port === 0 ? config.serverUrl.replace(/:0$/, `:${port}`) : config.serverUrl;
  const workers = config.workers > 1 ? await (await import('./serve-workers.ts')).startDataPlaneWorkers(config, logger) : undefined;
  process.stdout.write(`peerfill serving ${config.s3 ? `s3://${config.s3.bucket}/${config.s3.prefix}` : config.filesDir}\n  web page: ${url}/\n`);
  const insecure = (await import('./page.ts')).insecurePageWarning(`${url}/`);
  if (insecure) process.stderr.write(`peerfill: ${insecure}\n`);
  if (workers) process.stdout.write(`  data plane: ${config.workers} workers on port ${config.dataPort}, download URLs at ${config.publicUrl}\n`);
  // New and changed files are published without a restart: on a timer, and on SIGHUP.
  let rescanning = false;
  const rescan = (reason: string) => {
    if (rescanning) return;
    rescanning = true;
    server.origin.refresh().then(
      () => {
        logger.debug({ reason }, 'catalog rescanned');
        workers?.rescan();
      },
      (error: unknown) => logger.warn({ err: error, reason }, 'catalog rescan failed'),
    ).finally(() => (rescanning = false));
  };
  const timer = config.rescanIntervalSeconds > 0 ? setInterval(() => rescan('interval'), config.rescanIntervalSeconds * 1000) : undefined;
  timer?.unref();
  process.on('SIGHUP', () => rescan('SIGHUP'));
  onShutdown(async () => {
    clearInterval(timer);
    await workers?.close();
    await server.close();
  }, (message) => logger.info(message));
  return new Promise<number>(() => undefined);
}

async function tracker(argv: string[]): Promise<number> {
  const { runTracker } = await import('./tracker.ts');
  return runTracker(argv, onShutdown);
}

async function add(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...SERVER_OPTIONS, private: { type: 'boolean' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1 || values.help) {
    process.stderr.write('usage: peerfill add PATH|s3://bucket/key [--private] [--data-dir DIR]\n');
    return EXIT_USAGE;
  }
  const rest = argv.filter((arg) => arg !== positionals[0] && arg !== '--private');
  const config = loadServerConfig(rest, process.env, process.cwd());
  // Not the whole origin: no scan of the folder, no fastify, no AWS SDK unless S3 is used.
  const { addFile } = await import('../origin/publish/add-file.ts');
  const isPrivate = values.private === true;
  const manifest = await addFile(originConfigFrom(config), positionals[0]!, { logger: await createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel), isPrivate });
  process.stdout.write(`${JSON.stringify({ file_id: manifest.file_id, name: manifest.name, size: manifest.size, sha256: manifest.sha256, info_hash: manifest.info_hash, chunks: manifest.chunks.length, private: isPrivate })}\n`);
  return 0;
}

/** `peerfill grant FILE_ID --user U [--expires-in S]`: a grant for one user, signed with the first PEERFILL_PUBLISHER_KEYS key. */
async function grant(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { user: { type: 'string' }, 'expires-in': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  const usage = 'usage: peerfill grant FILE_ID --user USER [--expires-in SECONDS]   (key: PEERFILL_PUBLISHER_KEYS)\n';
  if (positionals.length !== 1 || values.help || values.user === undefined) {
    process.stderr.write(usage);
    return values.help ? 0 : EXIT_USAGE;
  }
  const { grantFileIdCodec, grantUserCodec, mintGrant, parseSigningKeys } = await import('../protocol/index.ts');
  const errors: string[] = [];
  const spec = process.env.PEERFILL_PUBLISHER_KEYS ?? '';
  const keys = spec === '' ? undefined : parseSigningKeys(spec);
  if (!keys) errors.push('PEERFILL_PUBLISHER_KEYS is required: the key a grant is signed with');
  else if (!keys.ok) errors.push(...keys.errors.map((message) => `PEERFILL_PUBLISHER_KEYS: ${message}`));
  if (!grantFileIdCodec.is(positionals[0])) errors.push(`FILE_ID is not a file id (got "${positionals[0]}")`);
  if (!grantUserCodec.is(values.user)) errors.push('--user must be 1-128 characters of [A-Za-z0-9_.:@+-]');
  const expiresIn = Number(values['expires-in'] ?? 3600);
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 366 * 86_400) errors.push('--expires-in must be an integer from 1 to 31622400 seconds');
  if (errors.length > 0 || !keys?.ok) throw new ConfigError(errors);
  const minted = await mintGrant(keys.keys[0]!, { fileId: positionals[0]!, user: values.user, expiresAtSeconds: Math.floor(Date.now() / 1000) + expiresIn });
  process.stdout.write(`${minted}\n`);
  return 0;
}

async function sign(argv: string[]): Promise<number> {
  const options = { ...SERVER_OPTIONS, 'expires-in': { type: 'string' } } as const;
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  if (positionals.length !== 1 || values.help) {
    process.stderr.write('usage: peerfill sign FILE_ID [--expires-in SECONDS]\n');
    return EXIT_USAGE;
  }
  const expiresIn = values['expires-in'];
  const rest = argv.filter((arg, index) => arg !== positionals[0] && arg !== '--expires-in' && argv[index - 1] !== '--expires-in');
  const config = loadServerConfig(rest, { ...process.env, ...(expiresIn ? { PEERFILL_URL_TTL_SECONDS: expiresIn } : {}) }, process.cwd());
  const { createOrigin } = await import('../origin/index.ts');
  const origin = await createOrigin(originConfigFrom(config), { logger: await createLogger('warn') });
  try {
    const minted = await origin.minter.mintDownloadUrl(positionals[0]!);
    process.stdout.write(`${minted.url}\n`);
    return 0;
  } finally {
    await origin.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(loadServerConfig(rest, process.env, process.cwd()));
    case 'tracker':
      return tracker(rest);
    case 'add':
      return add(rest);
    case 'sign':
      return sign(rest);
    case 'grant':
      return grant(rest);
    case 'get': {
      const { runGet } = await import('../client/node/cli-get.ts');
      return runGet(rest, { stdout: process.stdout, stderr: process.stderr, env: process.env });
    }
    case 'seed': {
      const { runSeed } = await import('../client/node/cli-seed.ts');
      return runSeed(rest, { stdout: process.stdout, stderr: process.stderr, env: process.env });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT_USAGE : 0;
    default:
      process.stderr.write(`peerfill: unknown command "${command}"\n\n${USAGE}`);
      return EXIT_USAGE;
  }
}

/** Exit once the command is done and its output written: library timers (simple-peer's
 * ICE-complete timer survives destroy()) must not keep a finished download waiting. */
async function exitWhenFlushed(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
  process.exit(code);
}

try {
  const code = await main(process.argv.slice(2));
  await exitWhenFlushed(code);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`peerfill: ${error.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`peerfill: ${error.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else {
    const code = typeof error === 'object' && error !== null && 'code' in error ? ` [${String(error.code)}]` : '';
    process.stderr.write(`peerfill: ${(error as Error).message}${code}\n`);
    process.exitCode = 1;
  }
}
