import {
  FILE_ID_RE,
  PfError,
  createDownloadResponseCodec,
  isErrorCode,
  sessionStateCodec,
  verifyManifest,
  type CreateDownloadResponse,
  type Manifest,
  type PatchDownloadBody,
  type SessionState,
} from '../protocol/index.ts';
import { networkError } from './network-error.ts';

/** One request to the JSON API, the body read whole: what the client needs of HTTP besides Range GETs. */
export type ApiRequest = (
  url: string,
  init?: { method?: 'GET' | 'POST' | 'PATCH'; headers?: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{ status: number; text: string }>;

/** ApiRequest over fetch (browsers; also what tests wrap to watch requests). */
export function fetchApiRequest(fetchImpl: typeof fetch = (input, init) => fetch(input, init)): ApiRequest {
  return async (url, init = {}) => {
    const response = await fetchImpl(url, init);
    return { status: response.status, text: await response.text() };
  };
}

/** GET a JSON document: its status and the parsed body (undefined if it is not JSON). */
export async function getJson(request: ApiRequest, url: string, signal?: AbortSignal): Promise<{ status: number; value: unknown }> {
  const { status, text } = await request(url, { signal });
  return { status, value: parseBody(text) };
}

function parseBody(text: string): unknown {
  try {
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** The download-session REST API (`/downloads`) and the manifest, as the client sees them. */
export class SessionClient {
  readonly serverUrl: string;
  readonly #request: ApiRequest;

  constructor(serverUrl: string, request: ApiRequest = fetchApiRequest()) {
    this.serverUrl = serverUrl.replace(/\/+$/, '');
    this.#request = request;
  }

  async create(fileId: string, clientId?: string, signal?: AbortSignal, grant?: string): Promise<CreateDownloadResponse> {
    const body = { file_id: fileId, ...(clientId === undefined ? {} : { client_id: clientId }), ...(grant === undefined ? {} : { grant }) };
    const value = await this.#json(`${this.serverUrl}/downloads`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal });
    const decoded = createDownloadResponseCodec.decode(value);
    if (!decoded.ok) throw new PfError('PF_ERR_UPSTREAM', `bad POST /downloads answer: ${decoded.errors.join('; ')}`);
    return decoded.value;
  }

  async patch(sessionId: string, token: string, body: PatchDownloadBody, signal?: AbortSignal): Promise<SessionState> {
    const value = await this.#json(`${this.serverUrl}/downloads/${encodeURIComponent(sessionId)}`, {
      method: 'PATCH',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      signal,
    });
    const decoded = sessionStateCodec.decode(value);
    if (!decoded.ok) throw new PfError('PF_ERR_UPSTREAM', `bad PATCH /downloads answer: ${decoded.errors.join('; ')}`);
    return decoded.value;
  }

  async get(sessionId: string, token: string, signal?: AbortSignal): Promise<SessionState> {
    const value = await this.#json(`${this.serverUrl}/downloads/${encodeURIComponent(sessionId)}`, {
      headers: { authorization: `Bearer ${token}` },
      signal,
    });
    const decoded = sessionStateCodec.decode(value);
    if (!decoded.ok) throw new PfError('PF_ERR_UPSTREAM', `bad GET /downloads answer: ${decoded.errors.join('; ')}`);
    return decoded.value;
  }

  /** Fetch and verify a manifest; its info_hash must be the one the session named. */
  async manifest(manifestUrl: string, expectedInfoHash: string | undefined, signal?: AbortSignal): Promise<Manifest> {
    const value = await this.#json(new URL(manifestUrl, `${this.serverUrl}/`).href, { signal });
    const checked = await verifyManifest(value);
    if (!checked.ok) throw new PfError('PF_ERR_MANIFEST_INVALID', checked.errors.join('; '));
    if (expectedInfoHash !== undefined && checked.manifest.info_hash !== expectedInfoHash) {
      throw new PfError('PF_ERR_MANIFEST_INVALID', 'manifest info_hash differs from the session');
    }
    return checked.manifest;
  }

  async #json(url: string, init: Parameters<ApiRequest>[1] = {}): Promise<unknown> {
    let answer: { status: number; text: string };
    try {
      answer = await this.#request(url, init);
    } catch (error) {
      if (init.signal?.aborted) throw new PfError('PF_ERR_ABORTED', undefined, { cause: error });
      throw networkError(error, url);
    }
    const value = parseBody(answer.text);
    if (answer.status < 200 || answer.status > 299) throw errorFromResponse(answer.status, value);
    return value;
  }
}

/** Map an error answer to a PfError, trusting the server's code only if it is one of ours. */
function errorFromResponse(status: number, body: unknown): PfError {
  const error = typeof body === 'object' && body !== null && 'error' in body ? body.error : undefined;
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  const message = typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string' ? error.message : `HTTP ${status}`;
  if (isErrorCode(code)) return new PfError(code, message);
  if (status === 401) return new PfError('PF_ERR_UNAUTHORIZED', message);
  if (status === 404) return new PfError('PF_ERR_NOT_FOUND', message);
  if (status === 410) return new PfError('PF_ERR_SESSION_EXPIRED', message);
  if (status === 429) return new PfError('PF_ERR_RATE_LIMITED', message);
  return new PfError('PF_ERR_UPSTREAM', message.slice(0, 200));
}

/**
 * `<server>/<file_id>` or `<server>/files/<file_id>` -> server base URL and file id.
 * A server under a path prefix keeps the prefix.
 */
export function parseDownloadUrl(input: string): { serverUrl: string; fileId: string } {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new PfError('PF_ERR_BAD_REQUEST', `not a URL: ${input}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PfError('PF_ERR_BAD_REQUEST', 'the URL must be http(s)');
  const parts = url.pathname.split('/').filter(Boolean);
  const fileId = parts.pop();
  if (fileId === undefined || !FILE_ID_RE.test(fileId)) throw new PfError('PF_ERR_BAD_REQUEST', `no file id in ${url.origin}${url.pathname}`);
  if (parts[parts.length - 1] === 'files') parts.pop();
  return { serverUrl: `${url.origin}${parts.length ? `/${parts.join('/')}` : ''}`, fileId };
}
