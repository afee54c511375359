import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FileEntrySchema, PfError, createCodec, isPfError, parseBitRate } from '../../protocol/index.ts';
import { createClient } from '../engine.ts';
import type { PolicyInfo } from '../hybrid-policy.ts';
import { getJson, parseDownloadUrl } from '../session-client.ts';
import type { CliIo } from './cli-io.ts';
import { EXIT_CODES, exitCodeFor } from './exit-codes.ts';
import { FileChunkStore } from './file-chunk-store.ts';
import { growHeapForTransfers } from './heap-growth.ts';
import { nodeApiRequest } from './node-http.ts';
import { nodeClientOptions, parseIceServersOption } from './node-runtime.ts';
import { renderProgressLine } from './progress-bar.ts';

export const GET_USAGE = `usage: peerfill get URL [-o OUT] [--json] [--no-peers] [--seed SECONDS] [--speed-floor RATE]
                    [--ice-servers JSON]

  URL          <server>/<file_id> or <server>/files/<file_id>
  -o OUT       where to write the file [the file's name, in the current directory]
  --json       progress as JSON lines on stdout
  --no-peers   HTTP only
  --seed S     stay and seed for S seconds after the download
  --speed-floor RATE
               hold at least RATE (e.g. 20mbit) and take the rest from peers; 0 = never
               slower than HTTP alone [the publisher's floor, if it set one]
  --ice-servers JSON
               STUN/TURN servers for peer connections, as RTCIceServers, e.g.
               '[{"urls":["turn:turn.example:3478"],"username":"u","credential":"p"}]'
               [the publisher's, from the server; else the WebRTC stack's defaults]
Ctrl-C pauses (state kept in OUT.part.state, exit ${EXIT_CODES.PAUSED}); run the same command again to resume.
`;

const fileEntryCodec = createCodec(FileEntrySchema);

/** `peerfill get`: returns the exit code (see exit-codes.ts). */
export async function runGet(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        output: { type: 'string', short: 'o' },
        json: { type: 'boolean' },
        'no-peers': { type: 'boolean' },
        seed: { type: 'string' },
        'speed-floor': { type: 'string' },
        'ice-servers': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.stderr.write(`peerfill get: ${(error as Error).message}\n${GET_USAGE}`);
    return EXIT_CODES.USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(GET_USAGE);
    return EXIT_CODES.OK;
  }
  if (positionals.length !== 1) {
    io.stderr.write(GET_USAGE);
    return EXIT_CODES.USAGE;
  }
  const seedSeconds = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isFinite(seedSeconds) || seedSeconds < 0) {
    io.stderr.write(`peerfill get: --seed must be a number of seconds\n`);
    return EXIT_CODES.USAGE;
  }
  const floorText = values['speed-floor'];
  const speedFloorBitsPerSecond = floorText === undefined ? undefined : floorText.trim() === '0' ? 0 : parseBitRate(floorText);
  if (speedFloorBitsPerSecond === undefined && floorText !== undefined) {
    io.stderr.write(`peerfill get: --speed-floor must be a bit rate such as 20mbit, or 0 (got ${JSON.stringify(floorText)})\n`);
    return EXIT_CODES.USAGE;
  }
  let rtcConfig: RTCConfiguration | undefined;
  try {
    rtcConfig = values['ice-servers'] === undefined ? undefined : parseIceServersOption(values['ice-servers']);
  } catch (error) {
    io.stderr.write(`peerfill get: ${(error as Error).message}\n`);
    return EXIT_CODES.USAGE;
  }
  const isJson = values.json === true;
  // Peers move bytes through fresh ArrayBuffers; an HTTP-only get pools its buffers and was a
  // little slower with the setting (bench/client, 4 rounds: 4.22 vs 3.91 s median).
  if (values['no-peers'] !== true) growHeapForTransfers();
  const emit = (event: string, data: Record<string, unknown> = {}) => {
    if (isJson) io.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
  };
  const say = (text: string) => {
    if (!isJson) io.stderr.write(text);
  };

  let target: { serverUrl: string; fileId: string };
  try {
    target = parseDownloadUrl(positionals[0]!);
  } catch (error) {
    io.stderr.write(`peerfill get: ${(error as Error).message}\n`);
    return EXIT_CODES.USAGE;
  }

  let outPath: string;
  try {
    outPath = resolve(values.output ?? (await defaultName(target)));
  } catch (error) {
    return report(io, isJson, error);
  }

  const store = new FileChunkStore(outPath, {
    onSaved: (chunks) => emit('saved', { chunks_durable: chunks }),
    onStateRejected: (reason, rechecked) => {
      emit('state_rejected', { reason, rechecked_chunks: rechecked });
      say(`peerfill: local state not trusted (${reason}); re-verified ${rechecked} chunks\n`);
    },
  });
  const client = createClient({
    ...nodeClientOptions({ usePeers: values['no-peers'] !== true }),
    ...(rtcConfig ? { rtcConfig } : {}),
    seedAfterDoneMs: seedSeconds * 1000,
    ...(speedFloorBitsPerSecond === undefined ? {} : { speedFloorBitsPerSecond }),
    onWarning: (message, details) => emit('warning', { message, ...details }),
  });
  const download = client.download(target, store);
  const isTty = io.stderr.isTTY === true && !isJson;
  let lastLineAtMs = 0;
  download.on('progress', (progress) => {
    emit('progress', {
      verified_bytes: progress.verifiedBytes,
      total_bytes: progress.totalBytes,
      from_peers_bytes: progress.fromPeersBytes,
      from_http_bytes: progress.fromHttpBytes,
      resumed_bytes: progress.resumedBytes,
      http_received_bytes: progress.httpReceivedBytes,
      uploaded_bytes: progress.uploadedBytes,
      bytes_per_second: Math.round(progress.downloadBytesPerSecond),
      eta_ms: progress.etaMs ?? null,
      peers: progress.peerCount,
      connections: progress.connections,
      ...(progress.relayProblem === undefined ? {} : { relay_problem: progress.relayProblem }),
      chunks_verified: progress.chunksVerified,
      chunk_count: progress.chunkCount,
      ...(progress.policy ? { policy: policyJson(progress.policy) } : {}),
    });
    if (isTty) say(`\r${renderProgressLine(progress)}\x1b[K`);
    else if (Date.now() - lastLineAtMs > 5000) {
      lastLineAtMs = Date.now();
      say(`${renderProgressLine(progress)}\n`);
    }
  });
  download.on('chunk', ({ index, source }) => emit('chunk', { index, source }));
  download.on('peer', ({ peerIdHex, isConnected, peerCount, connectionType }) =>
    emit('peer', { peer_id: peerIdHex, connected: isConnected, peers: peerCount, connection_type: connectionType ?? null }),
  );

  const signals = io.signals ?? process;
  return new Promise<number>((resolveExit) => {
    let isSettled = false;
    const settle = (code: number) => {
      if (isSettled) return;
      isSettled = true;
      signals.off('SIGINT', onSignal);
      signals.off('SIGTERM', onSignal);
      resolveExit(code);
    };
    const onSignal = () => {
      if (download.status === 'seeding' || download.status === 'done') {
        void download.destroy().finally(() => settle(EXIT_CODES.OK));
        return;
      }
      say('\npeerfill: pausing (state saved; run the same command again to resume)\n');
      void download
        .pause()
        .then(() => download.destroy())
        .then(
          () => {
            emit('paused', { session_id: download.sessionId ?? null, verified_bytes: download.progress().verifiedBytes });
            settle(EXIT_CODES.PAUSED);
          },
          (error: unknown) => settle(report(io, isJson, error)),
        );
    };
    signals.once('SIGINT', onSignal);
    signals.once('SIGTERM', onSignal);
    download.on('done', ({ sha256, progress }) => {
      if (isTty) say('\n');
      say(`peerfill: ${outPath} verified (sha256 ${sha256}); ${Math.round((progress.fromPeersBytes / Math.max(1, progress.fromPeersBytes + progress.fromHttpBytes)) * 100)}% from peers\n`);
      emit('done', {
        path: outPath,
        sha256,
        total_bytes: progress.totalBytes,
        from_peers_bytes: progress.fromPeersBytes,
        from_http_bytes: progress.fromHttpBytes,
        resumed_bytes: progress.resumedBytes,
        http_received_bytes: progress.httpReceivedBytes,
      });
      if (seedSeconds === 0) settle(EXIT_CODES.OK);
    });
    download.on('status', ({ status }) => {
      if (status === 'stopped' && download.progress().verifiedBytes === download.progress().totalBytes && download.manifest) settle(EXIT_CODES.OK);
    });
    download.on('error', (error) => {
      if (isTty) say('\n');
      settle(report(io, isJson, error));
    });
    void download.start();
  });
}

/** The file's name from the catalog, reduced to a safe base name; else the file id. */
async function defaultName(target: { serverUrl: string; fileId: string }): Promise<string> {
  try {
    const { status, value } = await getJson(nodeApiRequest, `${target.serverUrl}/files/${encodeURIComponent(target.fileId)}`);
    if (status === 404) throw new PfError('PF_ERR_FILE_NOT_FOUND', `no file "${target.fileId}" on ${target.serverUrl}`);
    if (status !== 200) return target.fileId;
    const decoded = fileEntryCodec.decode(value);
    if (!decoded.ok) return target.fileId;
    const name = basename(decoded.value.name.replaceAll('\\', '/'));
    return name === '' || name === '.' || name === '..' ? target.fileId : name;
  } catch (error) {
    if (isPfError(error)) throw error;
    throw new PfError('PF_ERR_UPSTREAM', `cannot reach ${target.serverUrl}: ${(error as Error).message}`);
  }
}

function report(io: CliIo, isJson: boolean, error: unknown): number {
  const pfError = isPfError(error) ? error : undefined;
  const code = pfError?.code;
  const message = error instanceof Error ? error.message : String(error);
  const storageError = !pfError && typeof error === 'object' && error !== null && 'code' in error && ['ENOSPC', 'EACCES', 'EROFS', 'EDQUOT'].includes(String(error.code));
  if (isJson) io.stdout.write(`${JSON.stringify({ event: 'error', code: code ?? null, message })}\n`);
  else io.stderr.write(`peerfill get: ${message}${code ? ` [${code}]` : ''}\n`);
  return storageError ? EXIT_CODES.STORAGE : exitCodeFor(code);
}


/** The policy in force and why it moved work, for `--json` (snake_case like the rest). */
function policyJson(policy: PolicyInfo): Record<string, unknown> {
  return {
    mode: policy.mode,
    speed_floor_bps: policy.speedFloorBitsPerSecond,
    http_bytes_per_second: Math.round(policy.httpBytesPerSecond),
    peer_bytes_per_second: Math.round(policy.peerBytesPerSecond),
    decisions: {
      servable_to_http: policy.decisions.servableToHttp,
      late_to_http: policy.decisions.lateToHttp,
      floor_held: policy.decisions.floorHeld,
    },
  };
}
