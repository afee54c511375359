import { describePeers, type ProgressInfo } from '../progress.ts';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${UNITS[unit]}`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '--:--';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mmss = `${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

/** One line: bar, total, peers vs HTTP split, speed, ETA, peers. */
export function renderProgressLine(progress: ProgressInfo, width = 24): string {
  const fraction = progress.totalBytes === 0 ? 1 : progress.verifiedBytes / progress.totalBytes;
  const filled = Math.round(fraction * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const fetched = progress.fromPeersBytes + progress.fromHttpBytes;
  const peerShare = fetched === 0 ? 0 : Math.round((progress.fromPeersBytes / fetched) * 100);
  return (
    `${bar} ${(fraction * 100).toFixed(1).padStart(5)}% ${formatBytes(progress.verifiedBytes)}/${formatBytes(progress.totalBytes)}` +
    ` | peers ${peerShare}% http ${fetched === 0 ? 0 : 100 - peerShare}%` +
    ` | ${formatBytes(progress.downloadBytesPerSecond)}/s | ETA ${formatDuration(progress.etaMs)} | ${describePeers(progress)}`
  );
}
