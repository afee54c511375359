import { basename, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FileListSchema, PfError, createCodec, isPfError } from '../../protocol/index.ts';
import { createClient } from '../engine.ts';
import { networkError } from '../network-error.ts';
import { getJson, type ApiRequest } from '../session-client.ts';
import type { CliIo } from './cli-io.ts';
import { MAX_TIMEOUT_SECONDS, parseTimeoutSeconds } from './cli-get.ts';
import { EXIT_CODES, exitCodeFor } from './exit-codes.ts';
import { growHeapForTransfers } from './heap-growth.ts';
import { DEFAULT_API_TIMEOUT_MS, createNodeApiRequest } from './node-http.ts';
import { iceServersOption, nodeClientOptions } from './node-runtime.ts';
import { SeedFileStore } from './seed-file-store.ts';

export const SEED_USAGE = `usage: peerfill seed FILE --server URL [--file-id ID] [--ice-servers JSON] [--timeout SECONDS] [--json]

  Checks FILE chunk by chunk against the server's manifest, then seeds it until Ctrl-C.
  Without --file-id, the catalog entry with FILE's name and size is used.
  --timeout S  a request that connects or answers no byte for S seconds counts as a lost
               connection (${MAX_TIMEOUT_SECONDS} at most) [${DEFAULT_API_TIMEOUT_MS / 1000}]
`;

const fileListCodec = createCodec(FileListSchema);
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** `peerfill seed`: returns the exit code (see exit-codes.ts). */
export async function runSeed(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string' },
        'file-id': { type: 'string' },
        'ice-servers': { type: 'string' },
        timeout: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.stderr.write(`peerfill seed: ${(error as Error).message}\n${SEED_USAGE}`);
    return EXIT_CODES.USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(SEED_USAGE);
    return EXIT_CODES.OK;
  }
  growHeapForTransfers();
  const server = values.server ?? io.env.PEERFILL_SERVER_URL;
  if (positionals.length !== 1 || server === undefined) {
    io.stderr.write(SEED_USAGE);
    return EXIT_CODES.USAGE;
  }
  const ice = iceServersOption(values['ice-servers'], 'seed', io.stderr);
  if (!ice) return EXIT_CODES.USAGE;
  const timeoutMs = parseTimeoutSeconds(values.timeout);
  if (timeoutMs === undefined) {
    io.stderr.write(`peerfill seed: --timeout must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (got ${JSON.stringify(values.timeout)})\n`);
    return EXIT_CODES.USAGE;
  }
  const isJson = values.json === true;
  const emit = (event: string, data: Record<string, unknown> = {}) => {
    if (isJson) io.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
  };
  const say = (text: string) => {
    if (!isJson) io.stderr.write(text);
  };
  const fail = (error: unknown): number => {
    const code = isPfError(error) ? error.code : undefined;
    const message = error instanceof Error ? error.message : String(error);
    if (isJson) io.stdout.write(`${JSON.stringify({ event: 'error', code: code ?? null, message })}\n`);
    else io.stderr.write(`peerfill seed: ${message}${code ? ` [${code}]` : ''}\n`);
    return exitCodeFor(code);
  };

  const filePath = resolve(positionals[0]!);
  const serverUrl = server.replace(/\/+$/, '');
  let fileId: string;
  try {
    fileId = values['file-id'] ?? (await findFileId(createNodeApiRequest(timeoutMs), serverUrl, filePath));
  } catch (error) {
    return fail(error);
  }

  const client = createClient({ ...nodeClientOptions({ timeoutMs }), ...ice, seedAfterDoneMs: Number.POSITIVE_INFINITY, seedOnly: true, onWarning: (message, details) => emit('warning', { message, ...details }) });
  // What no longer verifies is no longer offered to peers (download.withdrawChunks), and said;
  // what verifies again (the file put back) is offered again.
  const store = new SeedFileStore(filePath, {
    refuseDamaged: true,
    onChunkFailed: (index) => {
      download.withdrawChunks([index]);
      emit('warning', { message: 'a chunk read for an upload failed SHA-256: no longer served', path: filePath, chunk: index });
      say(`peerfill: warning: chunk ${index} of ${filePath} failed SHA-256 when read for an upload (the file changed on disk); no longer serving it\n`);
    },
    onChanged: ({ reason, verifiedChunks, chunkCount, lost, found }) => {
      download.withdrawChunks(lost);
      download.offerChunks(found);
      emit('file_changed', { path: filePath, reason, chunks_verified: verifiedChunks, chunk_count: chunkCount, chunks_lost: lost, chunks_found: found });
      say(`peerfill: ${filePath} changed on disk (${reason}); serving only the ${verifiedChunks} of ${chunkCount} chunks that still verify\n`);
    },
  });
  const download = client.download({ serverUrl, fileId }, store);
  const signals = io.signals ?? process;
  return new Promise<number>((resolveExit) => {
    let isSettled = false;
    const settle = (code: number) => {
      if (isSettled) return;
      isSettled = true;
      for (const signal of STOP_SIGNALS) signals.off(signal, onSignal);
      resolveExit(code);
    };
    const onSignal = () => void download.destroy().finally(() => settle(EXIT_CODES.OK));
    for (const signal of STOP_SIGNALS) signals.once(signal, onSignal);
    download.on('seeding', ({ chunks, chunkCount }) => {
      say(`peerfill: seeding the ${chunks} of ${chunkCount} chunks of ${filePath} that match ${fileId} (a partial copy); Ctrl-C to stop\n`);
      emit('seeding', { path: filePath, file_id: fileId, chunks_verified: chunks, chunk_count: chunkCount, peer_id: client.peerIdHex });
    });
    download.on('done', ({ sha256 }) => {
      say(`peerfill: seeding ${filePath} (sha256 ${sha256}) as ${fileId}; Ctrl-C to stop\n`);
      emit('seeding', { path: filePath, file_id: fileId, sha256, peer_id: client.peerIdHex });
    });
    download.on('peer', ({ peerIdHex, isConnected, peerCount, connectionType }) =>
      emit('peer', { peer_id: peerIdHex, connected: isConnected, peers: peerCount, connection_type: connectionType ?? null }),
    );
    download.on('error', (error) => settle(fail(error)));
    void download.start();
  });
}

/** The catalog entry with this file's name and size. */
async function findFileId(apiRequest: ApiRequest, serverUrl: string, filePath: string): Promise<string> {
  const { size } = await stat(filePath);
  let answer: { status: number; value: unknown };
  try {
    answer = await getJson(apiRequest, `${serverUrl}/files`);
  } catch (error) {
    // In plain words, as get says it (a --timeout, https:// to a plain port, DNS, ...).
    throw networkError(error, `${serverUrl}/files`);
  }
  if (answer.status !== 200) throw new PfError('PF_ERR_UPSTREAM', `GET /files: HTTP ${answer.status}`);
  const decoded = fileListCodec.decode(answer.value);
  if (!decoded.ok) throw new PfError('PF_ERR_UPSTREAM', 'GET /files: unexpected answer');
  const name = basename(filePath);
  const entry = decoded.value.files.find((file) => file.name === name && file.size === size);
  if (!entry) throw new PfError('PF_ERR_FILE_NOT_FOUND', `no published file named ${name} of ${size} bytes; pass --file-id`);
  return entry.file_id;
}
