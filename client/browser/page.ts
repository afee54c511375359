/** The web page at `/`: the catalog, and a card per download (see download-card.ts). */
import { fileListCodec, type FileEntry } from '../../protocol/index.ts';
import { createClient } from '../engine.ts';
import { DownloadCard, type CardHost } from './download-card.ts';
import { formatBytes } from './opfs-chunk-store.ts';
import { loadSavedDownloads, storeSavedDownloads, type SavedDownload } from './saved-downloads.ts';

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`the page lacks #${id}`);
  return found;
}

const serverUrl = new URL('.', location.href).href.replace(/\/+$/, '');
const catalogStatus = byId('catalog-status', HTMLElement);
const filesBody = byId('files', HTMLTableSectionElement);
const list = byId('downloads', HTMLUListElement);
const empty = byId('downloads-empty', HTMLElement);
const template = byId('card-template', HTMLTemplateElement);
const cards: DownloadCard[] = [];
const secureContextWarning = byId('secure-context-warning', HTMLElement);

/**
 * Why nothing can be downloaded here, or undefined. Outside a secure context (plain http:// at
 * any address but localhost) the browser gives the page no OPFS, no storage estimate and no
 * WebCrypto SHA-256, so a download could not store or check a chunk: its buttons are disabled
 * and this says why, instead of failing at the first chunk.
 */
const insecureReason = isSecureContext
  ? undefined
  : `Downloads are turned off: this page was opened at ${location.origin}, which is not a secure context, so the browser gives it no storage for downloads and no SHA-256 checks. Open it over HTTPS (or at http://localhost on the server's own machine).`;

const host: CardHost = {
  // One peer id for the tab, whatever it downloads or seeds.
  client: createClient({ onWarning: (message, details) => console.debug('peerfill:', message, details ?? '') }),
  persist(card, entry) {
    if (entry === undefined) cards.splice(cards.indexOf(card), 1);
    storeSavedDownloads(cards.filter((c) => c.root.dataset.kind !== 'seed').map((c) => c.entry));
    empty.hidden = cards.length > 0;
    showTitle();
  },
  changed: () => showTitle(),
};

const baseTitle = document.title;

/** The tab title says how far this tab's downloads are: "42% · big.iso – peerfill". */
function showTitle(): void {
  const active = cards.flatMap((card) => {
    const progress = card.activeProgress;
    return progress ? [{ card, ...progress }] : [];
  });
  let title = baseTitle;
  if (active.length > 0) {
    const verified = active.reduce((sum, { verifiedBytes }) => sum + verifiedBytes, 0);
    const total = active.reduce((sum, { totalBytes }) => sum + totalBytes, 0);
    const percent = Math.floor(total > 0 ? (verified / total) * 100 : 100);
    const what = active.length === 1 ? active[0]!.card.entry.name : `${active.length} downloads`;
    title = `${percent}% · ${what} – ${baseTitle}`;
  }
  if (document.title !== title) document.title = title;
}

// Closing the tab stops what it is fetching (what is verified is kept): the browser asks first.
window.addEventListener('beforeunload', (event) => {
  if (cards.some((card) => card.activeProgress !== undefined)) event.preventDefault();
});

function urlFor(file: FileEntry): string {
  return `${serverUrl}/${file.file_id}`;
}

function addCard(entry: SavedDownload, seedFrom?: File): DownloadCard {
  const card = new DownloadCard(template, host, entry, seedFrom);
  if (seedFrom) card.root.dataset.kind = 'seed';
  cards.push(card);
  list.append(card.root);
  empty.hidden = true;
  return card;
}

function startDownload(file: FileEntry): void {
  const url = urlFor(file);
  const existing = cards.find((card) => card.entry.url === url && card.root.dataset.kind !== 'seed');
  if (existing) {
    showCard(existing);
    return;
  }
  const card = addCard({ url, name: file.name, size: file.size, keepSeeding: false, isPaused: false, isDone: false });
  host.persist(card, card.entry);
  showCard(card);
  void card.boot();
}

/** The new card gets focus (so a screen reader reads it) and is scrolled into view (on a phone it starts below the fold). */
function showCard(card: DownloadCard): void {
  card.root.tabIndex = -1;
  card.root.focus({ preventScroll: true });
  card.root.scrollIntoView({ block: 'nearest' });
}

function seedLocalCopy(file: FileEntry, local: File): void {
  const card = addCard({ url: urlFor(file), name: file.name, size: file.size, keepSeeding: true, isPaused: false, isDone: true }, local);
  showCard(card);
  void card.boot();
}

function catalogRow(file: FileEntry): HTMLTableRowElement {
  const row = document.createElement('tr');
  row.dataset.fileId = file.file_id;
  const name = document.createElement('td');
  name.textContent = file.name;
  const size = document.createElement('td');
  size.className = 'num';
  size.textContent = formatBytes(file.size);
  const actions = document.createElement('td');
  actions.className = 'actions';
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'download';
  button.textContent = 'Download';
  button.setAttribute('aria-label', `Download ${file.name}`);
  button.addEventListener('click', () => startDownload(file));
  if (insecureReason) {
    button.disabled = true;
    button.setAttribute('aria-describedby', secureContextWarning.id);
  }
  // Seeding a copy you already have: the file is read from disk and verified, never uploaded to the server.
  const seedLabel = document.createElement('label');
  seedLabel.className = 'file-button';
  seedLabel.textContent = 'Seed my copy…';
  const input = document.createElement('input');
  input.type = 'file';
  input.className = 'seed-input';
  input.setAttribute('aria-label', `Seed your own copy of ${file.name}`);
  input.addEventListener('change', () => {
    const local = input.files?.[0];
    if (local) seedLocalCopy(file, local);
    input.value = '';
  });
  if (insecureReason) {
    input.disabled = true;
    input.setAttribute('aria-describedby', secureContextWarning.id);
    seedLabel.classList.add('is-disabled');
  }
  seedLabel.append(input);
  actions.append(button, seedLabel);
  row.append(name, size, actions);
  return row;
}

async function loadCatalog(): Promise<void> {
  try {
    const response = await fetch(`${serverUrl}/files`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { files } = fileListCodec.parse(await response.json());
    filesBody.replaceChildren(...files.map(catalogRow));
    catalogStatus.textContent = files.length === 0 ? 'No files are published yet.' : `${files.length} file${files.length === 1 ? '' : 's'}.`;
  } catch (error) {
    catalogStatus.textContent = `The catalog could not be loaded: ${error instanceof Error ? error.message : String(error)}`;
  }
}

function resumeSaved(): void {
  if (insecureReason) {
    secureContextWarning.textContent = insecureReason;
    secureContextWarning.hidden = false;
    empty.textContent = 'Downloads need a secure page (HTTPS, or http://localhost): browser storage and SHA-256 checks are not available here.';
    return;
  }
  // Every unfinished download continues from storage and its tracker session.
  for (const entry of loadSavedDownloads()) void addCard(entry).boot();
}

// The network is back: downloads waiting out a lost connection try again now, not at their next backoff.
window.addEventListener('online', () => {
  for (const card of cards) void card.retryNow();
});

resumeSaved();
void loadCatalog();
