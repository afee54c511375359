import { describeIceServers, describePeers, type ProgressInfo } from '../progress.ts';
import type { PolicyInfo } from '../hybrid-policy.ts';
import { formatBitRate, isPfError } from '../../protocol/index.ts';
import type { Client } from '../engine.ts';
import { download, downloadLockName, seedFile, tryHoldLock, waitForLock, type BrowserDownload } from './browser-download.ts';
import { formatBytes, openBrowserChunkStore, storeKey } from './opfs-chunk-store.ts';
import { parseDownloadUrl } from '../session-client.ts';
import type { SavedDownload } from './saved-downloads.ts';
import { saveFile } from './save.ts';
import { isConnectionLoss } from '../outage.ts';
import { backoffMs } from '../sleep.ts';

/** The card's own waits when not even the catalog entry can be fetched: as the engine's outage waits. */
const START_RETRY_BASE_MS = 1000;
const START_RETRY_MAX_MS = 30_000;

export interface CardHost {
  client: Client;
  /** The saved entry changed (or is gone, when `entry` is undefined). */
  persist(card: DownloadCard, entry: SavedDownload | undefined): void;
  /** The card's numbers or status changed (for the tab title). */
  changed(card: DownloadCard): void;
}

/** Statuses in which this tab is fetching or checking: the tab title counts them, and closing the tab asks first. */
const ACTIVE_STATUSES = new Set(['starting', 'running', 'verifying', 'checking', 'retrying']);

function element<T extends Element>(root: ParentNode, selector: string, type: new () => T): T {
  const found = root.querySelector(selector);
  if (!(found instanceof type)) throw new Error(`the card template lacks ${selector}`);
  return found;
}

function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '–';
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

/**
 * One download on the page: its card (progress split peers / CDN, speed, ETA, peers)
 * and its controls (pause/resume, cancel, save, keep seeding). Mirrors the engine's state
 * into `data-*` attributes too, for styling and for anyone scripting the page.
 */
export class DownloadCard {
  readonly root: HTMLLIElement;
  entry: SavedDownload;
  readonly #host: CardHost;
  /** A local copy being seeded (not remembered across reloads: the File cannot be). */
  readonly #seedFrom: File | undefined;
  #handle: BrowserDownload | undefined;
  #starting: Promise<void> | undefined;
  /** While the connection is lost: bytes received when it was, so that new ones say it is back. */
  #receivedAtLoss: number | undefined;
  /** Losses in a row before the engine started (the catalog entry could not be fetched): the card retries. */
  #startLosses = 0;
  /** The engine said 'done' (the whole file verified) in this card's run. */
  #wasDone = false;
  /** OPFS refusals in a row (its files open elsewhere): the waits between tries grow. */
  #busyTries = 0;
  #startRetryTimer: ReturnType<typeof setTimeout> | undefined;
  /** While another tab of this browser runs the download: the queued lock request, to take over when it lets go. */
  #otherTab: AbortController | undefined;
  readonly #parts: {
    bar: HTMLElement; resumed: HTMLElement; peers: HTMLElement; cdn: HTMLElement;
    done: HTMLElement; peersText: HTMLElement; cdnText: HTMLElement; speed: HTMLElement; eta: HTMLElement; peerCount: HTMLElement; uploaded: HTMLElement; policy: HTMLElement; ice: HTMLElement; storage: HTMLElement;
    status: HTMLElement; message: HTMLElement; retry: HTMLButtonElement; pause: HTMLButtonElement; save: HTMLButtonElement; cancel: HTMLButtonElement; keepSeeding: HTMLInputElement;
  };

  constructor(template: HTMLTemplateElement, host: CardHost, entry: SavedDownload, seedFrom?: File) {
    this.#host = host;
    this.entry = entry;
    this.#seedFrom = seedFrom;
    const fragment = template.content.cloneNode(true);
    if (!(fragment instanceof DocumentFragment)) throw new Error('bad card template');
    this.root = element(fragment, 'li', HTMLLIElement);
    const root = this.root;
    const span = (selector: string) => element(root, selector, HTMLElement);
    this.#parts = {
      bar: span('.bar'), resumed: span('.bar .resumed'), peers: span('.bar .peers'), cdn: span('.bar .cdn'),
      done: span('.done-text'), peersText: span('.peers-text'), cdnText: span('.cdn-text'), speed: span('.speed-text'), eta: span('.eta-text'),
      peerCount: span('.peer-count'), uploaded: span('.uploaded-text'), policy: span('.policy-text'), ice: span('.ice-text'), storage: span('.storage-text'), status: span('.status-text'), message: span('.message'),
      retry: element(root, 'button.retry', HTMLButtonElement), pause: element(root, 'button.pause', HTMLButtonElement), save: element(root, 'button.save', HTMLButtonElement),
      cancel: element(root, 'button.cancel', HTMLButtonElement), keepSeeding: element(root, 'input.keep-seeding', HTMLInputElement),
    };
    const { fileId } = parseDownloadUrl(entry.url);
    root.dataset.fileId = fileId;
    const heading = span('.name');
    heading.textContent = seedFrom ? `${entry.name} (seeding your copy)` : entry.name;
    heading.id = `card-${fileId}-${seedFrom ? 'seed' : 'dl'}`;
    root.setAttribute('aria-labelledby', heading.id);
    this.#parts.bar.setAttribute('aria-label', `Progress of ${entry.name}`);
    this.#parts.keepSeeding.checked = entry.keepSeeding || seedFrom !== undefined;
    this.#parts.keepSeeding.disabled = seedFrom !== undefined;
    this.#parts.retry.addEventListener('click', () => void this.retryNow());
    this.#parts.pause.addEventListener('click', () => void this.#togglePause());
    this.#parts.cancel.addEventListener('click', () => void this.#cancel());
    this.#parts.save.addEventListener('click', () => void this.#save());
    this.#parts.keepSeeding.addEventListener('change', () => void this.#setKeepSeeding(this.#parts.keepSeeding.checked));
    this.#parts.save.hidden = seedFrom !== undefined;
    this.#setStatus(entry.isDone ? 'done' : entry.isPaused ? 'paused' : 'starting');
    this.#render(undefined);
  }

  /** Start (or resume from storage) unless it is paused or finished and not seeding. */
  boot(): Promise<void> {
    if (this.entry.isPaused || (this.entry.isDone && !this.entry.keepSeeding && !this.#seedFrom)) {
      this.#render(undefined);
      return this.entry.isPaused ? this.#showStored() : Promise.resolve();
    }
    return this.#start();
  }

  /** Bytes verified and the share of the file, while this tab downloads it (undefined: not fetching or checking here). */
  get activeProgress(): { verifiedBytes: number; totalBytes: number } | undefined {
    if (!ACTIVE_STATUSES.has(this.root.dataset.status ?? '')) return undefined;
    return { verifiedBytes: Number(this.root.dataset.verifiedBytes ?? 0), totalBytes: this.entry.size };
  }

  /** Paused in an earlier visit, so no engine runs: what storage holds is shown, not "0 B". */
  async #showStored(): Promise<void> {
    try {
      const { serverUrl, fileId } = parseDownloadUrl(this.entry.url);
      const store = await openBrowserChunkStore(storeKey(serverUrl, fileId));
      const record = await store.peek().finally(() => store.close());
      if (!record || this.#handle || this.#starting) return;
      this.#showBytes(record.verifiedBytes, this.entry.size);
      this.root.dataset.verifiedBytes = String(record.verifiedBytes);
      this.root.dataset.resumedBytes = String(record.verifiedBytes);
      this.#parts.resumed.style.width = `${this.entry.size > 0 ? (record.verifiedBytes / this.entry.size) * 100 : 100}%`;
    } catch (error) {
      this.#message(`What is stored could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** "X of Y (Z%)", on the card and its progress bar. */
  #showBytes(verifiedBytes: number, totalBytes: number): number {
    const done = Math.round(totalBytes > 0 ? (verifiedBytes / totalBytes) * 100 : 100);
    this.#parts.done.textContent = `${formatBytes(verifiedBytes)} of ${formatBytes(totalBytes)} (${done}%)`;
    this.#parts.bar.setAttribute('aria-valuenow', String(done));
    return done;
  }

  /**
   * Try again now: after a failure (from what is kept), or while the connection is lost
   * (the browser went `online`, or the user pressed Retry) instead of at the backoff's next try.
   */
  async retryNow(): Promise<void> {
    const status = this.root.dataset.status;
    if (status !== 'retrying' && status !== 'failed') return;
    const handle = this.#handle;
    if (status === 'retrying' && handle) return handle.engine.retryNow();
    clearTimeout(this.#startRetryTimer);
    return this.#start();
  }

  #start(): Promise<void> {
    this.#starting ??= (async () => {
      clearTimeout(this.#startRetryTimer);
      this.#message('');
      this.#setStatus(this.#seedFrom ? 'checking' : this.entry.isDone ? 'seeding' : 'starting');
      try {
        const options = { client: this.#host.client, keepSeeding: this.entry.keepSeeding, onProgress: (progress: ProgressInfo) => this.#render(progress) };
        const handle = this.#seedFrom ? await seedFile(this.entry.url, this.#seedFrom, options) : await download(this.entry.url, options);
        this.#handle = handle;
        if (!this.#seedFrom) {
          this.#parts.storage.textContent = handle.isPersisted
            ? 'Persistent: kept until you remove it'
            : 'Not persistent: the browser may clear it when space runs low';
          this.root.dataset.isPersisted = String(handle.isPersisted);
        }
        // A failure stays said: the engine's own 'stopped' after it must not hide it (or Retry).
        handle.engine.on('status', ({ status }) => {
          if (status === 'running') this.#busyTries = 0;
          if (!(status === 'stopped' && isEnded(this.root.dataset.status))) this.#engineStatus(status);
        });
        // The whole-file SHA-256 check after the last chunk: not "Downloading · 100%".
        handle.engine.on('verifying', () => this.#setStatus(this.#seedFrom ? 'checking' : 'verifying'));
        handle.engine.on('healed', ({ chunks }) => {
          this.#message(`${chunks.length} stored chunk${chunks.length === 1 ? '' : 's'} no longer matched and ${chunks.length === 1 ? 'is' : 'are'} fetched again.`);
          if (this.root.dataset.status === 'verifying') this.#setStatus('running');
        });
        // A local copy that is not the published file: said, its matching chunks shared, nothing fetched.
        handle.engine.on('seeding', ({ chunks, chunkCount }) => this.#mismatch(chunkCount - chunks, chunkCount));
        handle.engine.on('peer', () => this.#render(handle.engine.progress()));
        handle.engine.on('retry', (wait) => this.#connectionLost(wait.error, wait.delayMs, handle.engine.progress().httpReceivedBytes));
        this.#startLosses = 0;
        handle.engine.on('error', (error) => {
          this.#handle = undefined;
          if (error.code === 'PF_ERR_FILE_NOT_FOUND') return this.#removed(handle.engine.progress().verifiedBytes);
          if (isAccessHandleBusy(error)) return this.#filesBusy();
          if (this.#seedFrom && error.code === 'PF_ERR_FILE_HASH_MISMATCH') return this.#mismatch(undefined, undefined);
          this.#message(error.message);
          this.#setStatus('failed');
        });
        handle.done.then(
          ({ sha256 }) => {
            this.root.dataset.sha256 = sha256;
            this.#update({ isDone: true, isPaused: false });
            this.#render(handle.engine.progress());
          },
          () => undefined,
        );
        this.#engineStatus(handle.engine.status);
      } catch (error) {
        if (isPfError(error) && error.code === 'PF_ERR_FILE_NOT_FOUND') this.#removed(undefined);
        else if (isPfError(error) && error.code === 'PF_ERR_OUTPUT_LOCKED') this.#heldElsewhere();
        else if (isConnectionLoss(error) && !this.entry.isPaused) {
          // Not even the catalog entry came: the card waits and starts again by itself.
          const delayMs = backoffMs(this.#startLosses++, START_RETRY_BASE_MS, START_RETRY_MAX_MS);
          this.#startRetryTimer = setTimeout(() => void this.#start(), delayMs);
          this.#connectionLost(error, delayMs, 0);
        } else {
          this.#message(error instanceof Error ? error.message : String(error));
          this.#setStatus('failed');
        }
      } finally {
        this.#starting = undefined;
      }
    })();
    return this.#starting;
  }

  /** The server or the network is away: said, with when the next try is; Retry tries at once. */
  #connectionLost(error: unknown, delayMs: number, receivedBytes: number): void {
    this.#receivedAtLoss = receivedBytes;
    const cause = error instanceof Error ? error.message : String(error);
    this.#message(`Connection lost (${cause}). What is verified is kept; it goes on by itself when the server answers again.`);
    this.#setStatus('retrying');
    this.#parts.status.textContent = `Connection lost, retrying (next try in ${Math.max(1, Math.round(delayMs / 1000))} s)`;
  }

  /**
   * Another tab of this browser holds the download's lock (its OPFS files): said, and a
   * queued lock request takes it over here once that tab closes or lets it go.
   */
  #heldElsewhere(): void {
    this.#message('');
    this.#setStatus('elsewhere');
    if (this.#otherTab) return;
    const waiting = new AbortController();
    this.#otherTab = waiting;
    const { serverUrl, fileId } = parseDownloadUrl(this.entry.url);
    waitForLock(downloadLockName(serverUrl, fileId), waiting.signal).then(
      (isFree) => {
        if (this.#otherTab !== waiting) return;
        this.#otherTab = undefined;
        if (isFree && !this.entry.isPaused) void this.#start();
      },
      (error: unknown) => {
        this.#otherTab = undefined;
        this.#message(error instanceof Error ? error.message : String(error));
        this.#setStatus('failed');
      },
    );
  }

  /**
   * The lock was ours but OPFS still had the files open (a tab that just closed, or a page that
   * does not take the lock): said as another tab's, and tried again after a backoff.
   */
  #filesBusy(): void {
    this.#message('');
    this.#setStatus('elsewhere');
    const delayMs = backoffMs(this.#busyTries++, START_RETRY_BASE_MS, START_RETRY_MAX_MS);
    this.#startRetryTimer = setTimeout(() => void this.#start(), delayMs);
  }

  /** The engine's status, as this card says it: a local copy is being checked until it is done. */
  #engineStatus(status: string): void {
    if (status === 'done') this.#wasDone = true;
    if (status === 'running' && this.#seedFrom) return this.#setStatus('checking');
    // A local copy seeds before 'done' only when it does not match: the 'seeding' event that follows says so.
    if (status === 'seeding' && this.#seedFrom && !this.#wasDone) return;
    // The engine seeds a moment after 'done' even when it is about to stop: not "sharing" unless it stays.
    if (status === 'seeding' && !this.entry.keepSeeding && !this.#seedFrom) return this.#setStatus('done');
    this.#setStatus(status);
  }

  /** "Seed my copy…" was given a file that is not the published one (`bad` of `count` chunks differ; undefined: none verify). */
  #mismatch(bad: number | undefined, count: number | undefined): void {
    this.#message(
      bad === undefined || count === undefined
        ? 'Your copy does not match the published file: none of its chunks verify. Nothing is shared, and nothing is downloaded.'
        : `Your copy does not match the published file: ${bad} of its ${count} chunks differ. The ${count - bad} that match are shared with others; nothing is downloaded.`,
    );
    this.#setStatus('mismatch');
  }

  /** The server no longer has the file: nothing more can come, and what is stored is offered for deletion. */
  #removed(storedBytes: number | undefined): void {
    const stored = storedBytes === undefined ? 'What this browser stored of it' : `The ${formatBytes(storedBytes)} this browser stored of it`;
    this.#message(`This file was removed from the server. ${stored} can be deleted.`);
    this.#setStatus('removed');
  }

  async #togglePause(): Promise<void> {
    const handle = this.#handle;
    if (this.entry.isPaused) {
      this.#update({ isPaused: false });
      if (handle && handle.engine.status === 'paused') await handle.resume();
      else await this.#start();
    } else {
      this.#update({ isPaused: true });
      clearTimeout(this.#startRetryTimer);
      await this.#starting;
      if (this.#handle) await this.#handle.pause();
      this.#setStatus('paused');
    }
  }

  async #cancel(): Promise<void> {
    // A finished file is the user's: it is deleted only when they say so.
    if (this.entry.isDone && !this.#seedFrom && !confirm(`Delete ${this.entry.name} from this browser's storage? You would have to download it again.`)) return;
    clearTimeout(this.#startRetryTimer);
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle) await handle.cancel();
    else if (!this.#seedFrom && !(await this.#removeStored())) return;
    this.root.remove();
    this.#host.persist(this, undefined);
  }

  /** Delete what storage holds of a download no engine runs here, unless another tab runs it (false: it did not). */
  async #removeStored(): Promise<boolean> {
    const { serverUrl, fileId } = parseDownloadUrl(this.entry.url);
    const release = await tryHoldLock(downloadLockName(serverUrl, fileId));
    if (!release) {
      this.#message('This download is running in another tab: stop or delete it there.');
      return false;
    }
    try {
      await (await openBrowserChunkStore(storeKey(serverUrl, fileId))).remove();
      return true;
    } catch (error) {
      this.#message(`Could not delete it: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    } finally {
      release();
    }
  }

  async #save(): Promise<void> {
    this.#message('');
    try {
      if (this.#handle) await this.#handle.save({ fileName: this.entry.name.split('/').pop() });
      else {
        // Finished in an earlier visit: the file is in storage, no engine needed.
        const { serverUrl, fileId } = parseDownloadUrl(this.entry.url);
        const store = await openBrowserChunkStore(storeKey(serverUrl, fileId));
        const blob = await store.file();
        await saveFile({ file: () => Promise.resolve(blob) }, { name: this.entry.name, file_id: fileId, content_type: 'application/octet-stream' });
      }
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') return; // the user closed the picker
      this.#message(`Could not save: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async #setKeepSeeding(isOn: boolean): Promise<void> {
    this.#update({ keepSeeding: isOn });
    if (this.#handle) this.#handle.keepSeeding = isOn;
    const status = this.#handle?.engine.status;
    if (isOn && this.entry.isDone && (status === undefined || status === 'stopped')) await this.#start();
  }

  #update(change: Partial<SavedDownload>): void {
    this.entry = { ...this.entry, ...change };
    if (!this.#seedFrom) this.#host.persist(this, this.entry);
    this.#render(this.#handle?.engine.progress());
  }

  #setStatus(status: string): void {
    this.root.dataset.status = status;
    const labels: Record<string, string> = {
      starting: 'Starting…', running: 'Downloading', paused: 'Paused', seeding: 'Done, sharing with others',
      done: 'Done', stopped: this.entry.isDone ? 'Done' : 'Stopped', failed: 'Failed', removed: 'Removed from the server',
      retrying: 'Connection lost, retrying', verifying: 'Verifying', checking: 'Checking your copy', mismatch: 'Your copy does not match', elsewhere: 'This download is running in another tab',
    };
    if (status !== 'retrying') this.#receivedAtLoss = undefined;
    this.#parts.status.textContent = labels[status] ?? status;
    // After a failure, what is verified is kept: Retry picks up from there.
    this.#parts.retry.hidden = status !== 'failed' && status !== 'retrying';
    this.#parts.pause.textContent = this.entry.isPaused ? 'Resume' : 'Pause';
    this.#parts.pause.setAttribute('aria-pressed', String(this.entry.isPaused));
    this.#parts.pause.disabled = this.entry.isDone || this.#seedFrom !== undefined || status === 'removed' || status === 'elsewhere';
    // Its files belong to the other tab while it runs there: this tab cannot delete them.
    this.#parts.cancel.disabled = status === 'elsewhere';
    this.#parts.cancel.textContent = status === 'removed' ? 'Delete stored chunks' : this.entry.isDone && !this.#seedFrom ? 'Delete…' : 'Cancel';
    this.#parts.save.disabled = !this.entry.isDone;
    this.#host.changed(this);
  }

  #message(text: string): void {
    this.#parts.message.textContent = text;
  }

  #render(progress: ProgressInfo | undefined): void {
    const total = progress?.totalBytes || this.entry.size;
    const p = this.#parts;
    const data = this.root.dataset;
    if (!progress) {
      if (this.entry.isDone) {
        p.done.textContent = `${formatBytes(total)} of ${formatBytes(total)}`;
        p.resumed.style.width = '100%';
      }
      this.#setStatus(data.status ?? 'starting');
      return;
    }
    // Bytes arrive again after a lost connection: it is back.
    if (data.status === 'retrying' && this.#receivedAtLoss !== undefined && progress.httpReceivedBytes > this.#receivedAtLoss) {
      this.#message('');
      this.#setStatus('running');
    }
    // Every chunk is in: what is left is the whole-file check (its event may come a tick later).
    if (data.status === 'running' && total > 0 && progress.verifiedBytes >= total) this.#setStatus(this.#seedFrom ? 'checking' : 'verifying');
    const percent = (bytes: number) => (total > 0 ? (bytes / total) * 100 : 100);
    p.resumed.style.width = `${percent(progress.resumedBytes)}%`;
    p.peers.style.width = `${percent(progress.fromPeersBytes)}%`;
    p.cdn.style.width = `${percent(progress.fromHttpBytes)}%`;
    const done = Math.round(percent(progress.verifiedBytes));
    p.bar.setAttribute('aria-valuetext', `${done}%: ${formatBytes(progress.fromPeersBytes)} from peers, ${formatBytes(progress.fromHttpBytes)} from the CDN`);
    this.#showBytes(progress.verifiedBytes, total);
    p.peersText.textContent = formatBytes(progress.fromPeersBytes);
    p.cdnText.textContent = formatBytes(progress.fromHttpBytes);
    p.speed.textContent = progress.downloadBytesPerSecond > 0 ? `${formatBytes(progress.downloadBytesPerSecond)}/s` : '–';
    p.eta.textContent = progress.verifiedBytes >= total ? '–' : formatDuration(progress.etaMs);
    p.peerCount.textContent = progress.relayProblem === undefined ? describePeers(progress) : `${describePeers(progress)}. No relay: ${progress.relayProblem}`;
    p.uploaded.textContent = formatBytes(progress.uploadedBytes);
    if (progress.policy) p.policy.textContent = describePolicy(progress.policy);
    p.ice.textContent = describeIceServers(progress.iceUrls);
    data.verifiedBytes = String(progress.verifiedBytes);
    data.fromPeersBytes = String(progress.fromPeersBytes);
    data.fromHttpBytes = String(progress.fromHttpBytes);
    data.resumedBytes = String(progress.resumedBytes);
    data.httpReceivedBytes = String(progress.httpReceivedBytes);
    data.uploadedBytes = String(progress.uploadedBytes);
    data.peerCount = String(progress.peerCount);
    data.connections = `host:${progress.connections.host} srflx:${progress.connections.srflx} relay:${progress.connections.relay}`;
    if (progress.relayProblem === undefined) delete data.relayProblem;
    else data.relayProblem = progress.relayProblem;
    this.#host.changed(this);
  }
}

/** OPFS refused an access handle because another one is open on the same file (another tab has it). */
function isAccessHandleBusy(error: unknown): boolean {
  return error instanceof Error && /\bNoModificationAllowedError\b/.test(error.message);
}

/** States after which the engine's own 'stopped' must not hide what was said (or the buttons it shows). */
function isEnded(status: string | undefined): boolean {
  return status === 'failed' || status === 'removed' || status === 'mismatch';
}

/** The hybrid policy in force, for people: "Never slower than HTTP" or "Speed floor 50 Mbit/s", and what it moved. */
function describePolicy(policy: PolicyInfo): string {
  const mode = policy.mode === 'speed-floor' ? `Speed floor ${formatBitRate(policy.speedFloorBitsPerSecond)}` : 'Never slower than HTTP';
  const moved = policy.decisions.servableToHttp + policy.decisions.lateToHttp;
  return moved > 0 ? `${mode} (${moved} chunk runs moved from slow peers to the CDN)` : mode;
}
