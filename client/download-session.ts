import { PfError, isPfError, type IceServer, type Manifest, type PatchDownloadBody } from '../protocol/index.ts';
import type { ChunkStore, ResumeData } from './chunk-store.ts';
import type { SessionClient } from './session-client.ts';

export interface DownloadTarget {
  serverUrl: string;
  fileId: string;
  /** A private file: the publisher's grant for this user (see protocol/grant.ts). */
  grant?: string;
}

/** What the server says of a session that no longer exists for us: open a new one. */
const LOST_SESSION_CODES: readonly string[] = ['PF_ERR_SESSION_NOT_FOUND', 'PF_ERR_NOT_FOUND', 'PF_ERR_UNAUTHORIZED', 'PF_ERR_SESSION_EXPIRED'];

/**
 * One download's session on the server: resumed from the store's saved state or opened anew,
 * its signed download URL kept fresh, and progress reported to it. The session is also what
 * the store saves, so a crashed or reloaded download finds it again.
 */
export class DownloadSession {
  readonly #target: DownloadTarget;
  readonly #api: SessionClient;
  readonly #store: ChunkStore;
  readonly #clientId: string | undefined;
  readonly #warn: (message: string, details?: Record<string, unknown>) => void;
  readonly #onVersionChanged: (() => void) | undefined;
  #state: ResumeData | undefined;
  #downloadUrl = '';
  #speedFloorBitsPerSecond: number | undefined;
  #iceServers: IceServer[] | undefined;
  #announceProof: string | undefined;

  constructor(options: {
    target: DownloadTarget;
    api: SessionClient;
    store: ChunkStore;
    clientId: string | undefined;
    warn: (message: string, details?: Record<string, unknown>) => void;
    /** refreshUrl() found that the file was republished: the session now names another version (see Download). */
    onVersionChanged?: () => void;
  }) {
    this.#target = options.target;
    this.#api = options.api;
    this.#store = options.store;
    this.#clientId = options.clientId;
    this.#warn = options.warn;
    this.#onVersionChanged = options.onVersionChanged;
  }

  /** The session's state once open() has settled. */
  get state(): ResumeData | undefined {
    return this.#state;
  }

  /** The publisher's speed floor, as the server last said (undefined = none). */
  get speedFloorBitsPerSecond(): number | undefined {
    return this.#speedFloorBitsPerSecond;
  }

  /** The publisher's STUN/TURN servers, as the server last said (undefined = the client's defaults). Fresh TURN credentials come with every answer. */
  get iceServers(): IceServer[] | undefined {
    return this.#iceServers;
  }

  /** Proof of the session for announces (pf_proof), as the server last handed it out. */
  get announceProof(): string | undefined {
    return this.#announceProof;
  }

  /** The current signed URL of the file's bytes. */
  get downloadUrl(): string {
    return this.#downloadUrl;
  }

  /** Resume `saved` if it is this file's session and the server still has it; otherwise open a new one. */
  async open(saved: ResumeData | undefined): Promise<ResumeData> {
    if (saved && saved.server_url === this.#target.serverUrl && saved.file_id === this.#target.fileId) {
      try {
        this.#state = saved;
        await this.#resume();
        return saved;
      } catch (error) {
        this.#warn('cannot resume the saved session; starting a new one', { error: String(error) });
        this.#state = undefined;
      }
    }
    return this.#create();
  }

  /**
   * The manifest the session names, checked against its info_hash. When the server has
   * another version of the file than the one the session began with (it was republished), a
   * new session is opened for the new version: `changedFrom` is the old info_hash.
   */
  async manifest(): Promise<{ manifest: Manifest; changedFrom?: string }> {
    const state = this.#openState();
    const current = await this.#api.manifest(state.manifest_url, undefined);
    if (current.info_hash === state.info_hash) return { manifest: current };
    const created = await this.#create();
    // The new session names the version it serves; the manifest must be that one.
    return { manifest: await this.#api.manifest(created.manifest_url, created.info_hash), changedFrom: state.info_hash };
  }

  /**
   * A fresh download URL: PATCH the session `resumed`; if the session is gone (or names another
   * version), open a new one. When that new session names another version of the file (it was
   * republished), `onVersionChanged` is told: the caller goes on with the new version.
   */
  async refreshUrl(): Promise<string> {
    try {
      await this.#resume();
    } catch (error) {
      const isOtherVersion = error instanceof OtherVersionError;
      if (!isOtherVersion && (!isPfError(error) || !LOST_SESSION_CODES.includes(error.code))) throw error;
      this.#warn(isOtherVersion ? 'the session names another version of the file; opening a new one' : 'session lost; opening a new one', isPfError(error) ? { code: error.code } : {});
      const wanted = this.#openState().info_hash;
      const state = await this.#create();
      if (state.info_hash !== wanted) this.#onVersionChanged?.();
    }
    return this.#downloadUrl;
  }

  /** PATCH the session with this progress (and a status change, if any). Does nothing before open(). */
  async report(body: PatchDownloadBody): Promise<void> {
    const state = this.#state;
    if (!state) return;
    const answer = await this.#api.patch(state.session_id, state.session_token, body);
    this.#iceServers = answer.ice_servers;
  }

  async #create(): Promise<ResumeData> {
    const created = await this.#api.create(this.#target.fileId, this.#clientId, undefined, this.#target.grant);
    const { serverUrl, fileId } = this.#target;
    const state: ResumeData = {
      session_id: created.session_id,
      session_token: created.session_token,
      server_url: serverUrl,
      file_id: fileId,
      manifest_url: new URL(created.manifest_url, `${serverUrl}/`).href,
      tracker_url: new URL(created.tracker_url, `${serverUrl.replace(/^http/, 'ws')}/`).href,
      info_hash: created.info_hash,
    };
    this.#state = state;
    this.#speedFloorBitsPerSecond = created.speed_floor_bps;
    this.#iceServers = created.ice_servers;
    this.#announceProof = created.announce_proof;
    this.#downloadUrl = new URL(created.download_url, `${serverUrl}/`).href;
    await this.#store.saveResumeData(state);
    return state;
  }

  async #resume(): Promise<void> {
    const state = this.#openState();
    const answer = await this.#api.patch(state.session_id, state.session_token, { status: 'resumed' });
    if (answer.info_hash !== state.info_hash) throw new OtherVersionError();
    if (!answer.download_url) throw new PfError('PF_ERR_UPSTREAM', 'PATCH resumed returned no download_url');
    this.#speedFloorBitsPerSecond = answer.speed_floor_bps;
    this.#iceServers = answer.ice_servers;
    this.#announceProof = answer.announce_proof ?? this.#announceProof;
    this.#downloadUrl = new URL(answer.download_url, `${this.#target.serverUrl}/`).href;
  }

  #openState(): ResumeData {
    if (!this.#state) throw new PfError('PF_ERR_INTERNAL', 'the download session is not open');
    return this.#state;
  }
}

/** A session answer names another version of the file than the session began with. */
class OtherVersionError extends PfError {
  constructor() {
    super('PF_ERR_MANIFEST_INVALID', 'the session now names another version of the file');
  }
}
