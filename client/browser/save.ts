import type { Manifest } from '../../protocol/index.ts';

/** What saving needs from a finished download's store. */
export interface SavableStore {
  /** The whole file as a disk-backed Blob (OPFS / IndexedDB), never a copy in memory. */
  file(): Promise<Blob>;
}

export interface SaveOptions {
  /** Suggested file name [the manifest's name]. */
  fileName?: string;
  /** 'auto': the File System Access save picker where the browser has one, else a download link. */
  method?: 'auto' | 'picker' | 'link';
}

interface SaveFilePickerWindow {
  showSaveFilePicker(options?: { suggestedName?: string }): Promise<FileSystemFileHandle>;
}

function pickerWindow(): SaveFilePickerWindow | undefined {
  if (typeof window === 'undefined' || !('showSaveFilePicker' in window) || typeof window.showSaveFilePicker !== 'function') return undefined;
  const picker = window.showSaveFilePicker;
  return { showSaveFilePicker: (options) => picker.call(window, options) as Promise<FileSystemFileHandle> };
}

/** Whether this browser can stream a file straight to a place the user picks. */
export function hasSavePicker(): boolean {
  return pickerWindow() !== undefined;
}

/**
 * Save a finished download. With the save picker, the stored file streams to the chosen
 * file; otherwise the disk-backed Blob from OPFS / IndexedDB is offered as a download.
 * Never a whole-file copy in memory either way.
 * Call it from a user gesture (a click): browsers require one for both.
 */
export async function saveFile(store: SavableStore, manifest: Pick<Manifest, 'name' | 'file_id' | 'content_type'>, options: SaveOptions = {}): Promise<'picker' | 'link'> {
  const fileName = options.fileName ?? manifest.name.split('/').pop() ?? manifest.file_id;
  const method = options.method ?? 'auto';
  const picker = method === 'link' ? undefined : pickerWindow();
  if (picker) {
    const handle = await picker.showSaveFilePicker({ suggestedName: fileName });
    const blob = await store.file();
    // Streams from disk to disk a piece at a time; pipeTo closes (or aborts) the writable.
    await blob.stream().pipeTo(await handle.createWritable());
    return 'picker';
  }
  if (method === 'picker') throw new Error('this browser has no save picker');
  const blob = await store.file();
  const url = URL.createObjectURL(new File([blob], fileName, { type: manifest.content_type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has started reading the Blob; keep the URL alive a while for slow disks.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return 'link';
}
