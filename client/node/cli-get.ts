import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { FileEntrySchema, PfError, createCodec, isPfError, parseBitRate } from '../../protocol/index.ts';
import { createClient } from '../engine.ts';
import type { PolicyInfo } from '../hybrid-policy.ts';
import type { DownloadTarget } from '../download-session.ts';
import { Outage, formatDuration, retryWhileDown, type OutageWait } from '../outage.ts';
import { networkError } from '../network-error.ts';
import { SessionClient, getJson, parseDownloadUrl, type ApiRequest } from '../session-client.ts';
import type { CliIo } from './cli-io.ts';
import { EXIT_CODES, exitCodeFor } from './exit-codes.ts';
import { FileChunkStore } from './file-chunk-store.ts';
import { checkOutputFolder, existingOutput, removeLeftovers, resolveOutput } from './get-output.ts';
import { growHeapForTransfers } from './heap-growth.ts';
import { DEFAULT_API_TIMEOUT_MS, createNodeApiRequest } from './node-http.ts';
import { iceServersOption, nodeClientOptions, nodeHashChunk } from './node-runtime.ts';
import { lockOutput, type OutputLock } from './output-lock.ts';
import { isStorageErrno } from './storage-error.ts';
import { renderProgressLine } from './progress-bar.ts';

/** The longest --timeout: an hour of silence is no longer a timeout anyone waits for. */
export const MAX_TIMEOUT_SECONDS = 3600;

export const GET_USAGE = `usage: peerfill get URL [-o OUT] [--json] [--no-peers] [--seed SECONDS] [--speed-floor RATE] [--retry-for SECONDS] [--timeout SECONDS]
                    [--force] [--ice-servers JSON]

  URL          <server>/<file_id> or <server>/files/<file_id>
  -o OUT       where to write the file; a folder (DIR/ or one that exists) gets it under its
               own name [the file's name, in the current directory]
  --json       progress as JSON lines on stdout
  --no-peers   HTTP only
  --seed S     stay and seed for S seconds after the download
  --speed-floor RATE
               hold at least RATE (e.g. 20mbit) and take the rest from peers; 0 = never
               slower than HTTP alone [the publisher's floor, if it set one]
  --retry-for S
               ride out a lost server or network for S seconds; 0 = fail at once [600]
  --timeout S  a request that connects or answers no byte for S seconds counts as a lost
               connection (API and data-plane requests alike; ${MAX_TIMEOUT_SECONDS} at most) [${DEFAULT_API_TIMEOUT_MS / 1000}]
  --force      replace an existing OUT that is another file
  --ice-servers JSON
               STUN/TURN servers for peer connections, as RTCIceServers, e.g.
               '[{"urls":["turn:turn.example:3478"],"username":"u","credential":"p"}]'
               [the publisher's, from the server; else the WebRTC stack's defaults]
Ctrl-C (or SIGTERM, SIGHUP) pauses: state kept in OUT.part.state, exit ${EXIT_CODES.PAUSED}; run the same command again to resume.
`;

const fileEntryCodec = createCodec(FileEntrySchema);

/** `--timeout S` in milliseconds [15 s], or undefined when S is not a number of seconds in (0, 3600]. */
export function parseTimeoutSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return DEFAULT_API_TIMEOUT_MS;
  if (!/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(text)) return undefined;
  const seconds = Number(text);
  const ms = Math.round(seconds * 1000);
  return ms >= 1 && seconds <= MAX_TIMEOUT_SECONDS ? ms : undefined;
}

const PAUSE_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

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
        'retry-for': { type: 'string' },
        timeout: { type: 'string' },
        force: { type: 'boolean' },
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
  const retryForSeconds = values['retry-for'] === undefined ? 600 : Number(values['retry-for']);
  if (!Number.isFinite(retryForSeconds) || retryForSeconds < 0) {
    io.stderr.write(`peerfill get: --retry-for must be a number of seconds (0 = fail at once)\n`);
    return EXIT_CODES.USAGE;
  }
  const timeoutMs = parseTimeoutSeconds(values.timeout);
  if (timeoutMs === undefined) {
    io.stderr.write(`peerfill get: --timeout must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (got ${JSON.stringify(values.timeout)})\n`);
    return EXIT_CODES.USAGE;
  }
  const apiRequest = createNodeApiRequest(timeoutMs);
  const floorText = values['speed-floor'];
  const speedFloorBitsPerSecond = floorText === undefined ? undefined : floorText.trim() === '0' ? 0 : parseBitRate(floorText);
  if (speedFloorBitsPerSecond === undefined && floorText !== undefined) {
    io.stderr.write(`peerfill get: --speed-floor must be a bit rate such as 20mbit, or 0 (got ${JSON.stringify(floorText)})\n`);
    return EXIT_CODES.USAGE;
  }
  const ice = iceServersOption(values['ice-servers'], 'get', io.stderr);
  if (!ice) return EXIT_CODES.USAGE;
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
  const onRetry = (wait: OutageWait) => {
    const message = wait.error instanceof Error ? wait.error.message : String(wait.error);
    emit('retry', { message, retry_in_ms: wait.delayMs, down_for_ms: wait.downForMs, retry_for_ms: wait.retryForMs });
    say(`\npeerfill: connection lost (${message}); retrying in ${Math.max(1, Math.round(wait.delayMs / 1000))}s (down ${formatDuration(wait.downForMs)}, giving up after ${formatDuration(wait.retryForMs)})\n`);
  };

  let target: { serverUrl: string; fileId: string };
  try {
    target = parseDownloadUrl(positionals[0]!);
  } catch (error) {
    io.stderr.write(`peerfill get: ${(error as Error).message}\n`);
    return EXIT_CODES.USAGE;
  }

  const outage = new Outage({ retryForMs: retryForSeconds * 1000 });
  let outPath: string;
  let lock: OutputLock;
  try {
    outPath = await resolveOutput(values.output, () => retryWhileDown(() => defaultName(target, apiRequest), outage, onRetry));
    await checkOutputFolder(outPath);
    lock = await lockOutput(outPath);
  } catch (error) {
    return report(io, isJson, error);
  }
  try {
    if (values.force !== true) {
      const existing = await checkExisting(outPath, target, apiRequest, outage, onRetry);
      if (existing !== undefined) {
        say(`peerfill: ${outPath} is already downloaded, verified (sha256 ${existing.sha256}); nothing fetched\n`);
        emit('done', { path: outPath, sha256: existing.sha256, total_bytes: existing.size, already_downloaded: true, from_peers_bytes: 0, from_http_bytes: 0, resumed_bytes: existing.size });
        return EXIT_CODES.OK;
      }
    }
    return await download(outPath);
  } catch (error) {
    return report(io, isJson, error);
  } finally {
    await lock.release();
  }

  function download(outPath: string): Promise<number> {
    const store = new FileChunkStore(outPath, {
      onSaved: (chunks) => emit('saved', { chunks_durable: chunks }),
      onStateRejected: (reason, rechecked, kept) => {
        emit('state_rejected', { reason, rechecked_chunks: rechecked, kept_chunks: kept });
        say(`peerfill: local state not trusted (${reason}); re-verified ${rechecked} chunks, kept ${kept}\n`);
      },
    });
    const client = createClient({
      ...nodeClientOptions({ usePeers: values['no-peers'] !== true, timeoutMs }),
      ...ice,
      seedAfterDoneMs: seedSeconds * 1000,
      retryForMs: retryForSeconds * 1000,
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
        ...(progress.iceUrls === undefined ? {} : { ice_servers: progress.iceUrls }),
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
    download.on('retry', onRetry);
    download.on('changed', ({ name, previousInfoHash, infoHash, keptChunks, chunkCount }) => {
      emit('changed', { name, previous_info_hash: previousInfoHash, info_hash: infoHash, ...(keptChunks === undefined ? {} : { kept_chunks: keptChunks, chunk_count: chunkCount }) });
      const kept = keptChunks === undefined ? 'keeping the chunks that still match' : `keeping the ${keptChunks} of ${chunkCount} chunks that still match`;
      // Mid-download, the progress line is ended first.
      say(`${keptChunks !== undefined && isTty ? '\n' : ''}peerfill: ${name} changed on the server since this download started; going on with the new version, ${kept}\n`);
    });
    download.on('healed', ({ chunks }) => {
      emit('healed', { chunks: chunks.length });
      say(`\npeerfill: the whole-file SHA-256 did not match; re-verified every chunk: ${chunks.length} changed on disk and are fetched again\n`);
    });

    const signals = io.signals ?? process;
    return new Promise<number>((resolveExit) => {
      let isSettled = false;
      let isDone = false;
      let isPausing = false;
      const settle = (code: number) => {
        if (isSettled) return;
        isSettled = true;
        for (const signal of PAUSE_SIGNALS) signals.off(signal, onSignal);
        resolveExit(code);
      };
      // Either the file is published and its state removed (0), or the download is paused with
      // its state saved (130): a finish under way is waited for, never cut in half.
      const onSignal = () => {
        if (isPausing) return;
        isPausing = true;
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
              if (isDone) return settle(EXIT_CODES.OK);
              emit('paused', { session_id: download.sessionId ?? null, verified_bytes: download.progress().verifiedBytes });
              settle(EXIT_CODES.PAUSED);
            },
            (error: unknown) => settle(report(io, isJson, error)),
          );
      };
      for (const signal of PAUSE_SIGNALS) signals.on(signal, onSignal);
      download.on('done', ({ sha256, progress }) => {
        isDone = true;
        if (isTty) say('\n');
        say(`peerfill: ${outPath} verified (sha256 ${sha256}); ${Math.round((progress.fromPeersBytes / Math.max(1, progress.fromPeersBytes + progress.fromHttpBytes)) * 100)}% from peers\n`);
        emit('done', {
          path: outPath,
          sha256,
          peer_id: client.peerIdHex,
          total_bytes: progress.totalBytes,
          from_peers_bytes: progress.fromPeersBytes,
          from_http_bytes: progress.fromHttpBytes,
          resumed_bytes: progress.resumedBytes,
          http_received_bytes: progress.httpReceivedBytes,
        });
        if (seedSeconds === 0 && !isPausing) settle(EXIT_CODES.OK);
      });
      download.on('status', ({ status }) => {
        // The seeding time ran out.
        if (status === 'stopped' && isDone && !isPausing) settle(EXIT_CODES.OK);
      });
      download.on('error', (error) => {
        if (isTty) say('\n');
        // The store is closed (its last state written) before the process may exit.
        void download.destroy().catch(() => undefined).finally(() => settle(report(io, isJson, error)));
      });
      void download.start();
    });
  }
}

/** The finished file at OUT (every chunk matches the manifest, checked locally), or undefined. */
async function checkExisting(
  outPath: string,
  target: DownloadTarget,
  apiRequest: ApiRequest,
  outage: Outage,
  onRetry: (wait: OutageWait) => void,
): Promise<{ sha256: string; size: number } | undefined> {
  if (!(await stat(outPath).then(() => true, () => false))) return undefined;
  const api = new SessionClient(target.serverUrl, apiRequest);
  const manifest = await retryWhileDown(() => api.manifest(`${target.serverUrl}/files/${encodeURIComponent(target.fileId)}/manifest`, undefined), outage, onRetry);
  const existing = await existingOutput(outPath, manifest, nodeHashChunk);
  if (existing.kind === 'other') {
    throw new PfError('PF_ERR_OUTPUT_EXISTS', `${outPath} exists and is another file (${existing.matchingChunks} of ${existing.chunkCount} chunks match ${target.fileId}); --force replaces it`);
  }
  if (existing.kind !== 'finished') return undefined;
  await removeLeftovers(outPath);
  return { sha256: manifest.sha256, size: manifest.size };
}

/** The file's name from the catalog, reduced to a safe base name; else the file id. */
async function defaultName(target: { serverUrl: string; fileId: string }, apiRequest: ApiRequest): Promise<string> {
  try {
    const { status, value } = await getJson(apiRequest, `${target.serverUrl}/files/${encodeURIComponent(target.fileId)}`);
    if (status === 404) throw new PfError('PF_ERR_FILE_NOT_FOUND', `no file "${target.fileId}" on ${target.serverUrl}`);
    if (status >= 500) throw new PfError('PF_ERR_UPSTREAM', `${target.serverUrl} answered HTTP ${status}`);
    if (status !== 200) return target.fileId;
    const decoded = fileEntryCodec.decode(value);
    if (!decoded.ok) return target.fileId;
    const name = basename(decoded.value.name.replaceAll('\\', '/'));
    return name === '' || name === '.' || name === '..' ? target.fileId : name;
  } catch (error) {
    if (isPfError(error)) throw error;
    throw networkError(error, target.serverUrl);
  }
}

function report(io: CliIo, isJson: boolean, error: unknown): number {
  const pfError = isPfError(error) ? error : undefined;
  const code = pfError?.code;
  const message = error instanceof Error ? error.message : String(error);
  const storageError = !pfError && isStorageErrno(error);
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
      choked_to_http: policy.decisions.chokedToHttp,
      yielded_to_peer_http: policy.decisions.yieldedToPeerHttp,
    },
  };
}
