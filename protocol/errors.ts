/**
 * The one registry of peerfill error codes. Every error that crosses a component
 * boundary (HTTP body, tracker frame, CLI exit) carries one of these codes.
 */
export const ERROR_CODES = {
  PF_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  PF_ERR_VALIDATION: { status: 400, message: 'The request does not match its schema' },
  PF_ERR_UNAUTHORIZED: { status: 401, message: 'A valid bearer token is required' },
  PF_ERR_FORBIDDEN: { status: 403, message: 'This file needs a grant or an API key from its publisher' },
  PF_ERR_SIGNATURE_MISSING: { status: 403, message: 'The URL is not signed' },
  PF_ERR_SIGNATURE_INVALID: { status: 403, message: 'The URL signature is invalid' },
  PF_ERR_URL_EXPIRED: { status: 403, message: 'The URL has expired' },
  PF_ERR_UNKNOWN_KEY: { status: 403, message: 'The URL was signed with an unknown key' },
  PF_ERR_NOT_FOUND: { status: 404, message: 'Not found' },
  PF_ERR_FILE_NOT_FOUND: { status: 404, message: 'No such file' },
  PF_ERR_SESSION_NOT_FOUND: { status: 404, message: 'No such download session' },
  PF_ERR_SESSION_EXPIRED: { status: 410, message: 'The download session has expired' },
  PF_ERR_REQUEST_TIMEOUT: { status: 408, message: 'The request took too long to arrive' },
  PF_ERR_PRECONDITION_FAILED: { status: 412, message: 'A precondition of the request failed' },
  PF_ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'The payload is too large' },
  PF_ERR_URI_TOO_LONG: { status: 414, message: 'The URL is too long' },
  PF_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The body must be application/json' },
  PF_ERR_RANGE_NOT_SATISFIABLE: { status: 416, message: 'The requested range is not satisfiable' },
  PF_ERR_RATE_LIMITED: { status: 429, message: 'Too many requests' },
  PF_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large' },
  PF_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  PF_ERR_UPSTREAM: { status: 502, message: 'The storage backend failed' },
  PF_ERR_STORE_UNAVAILABLE: { status: 503, message: 'The state store is unavailable' },
  // Not HTTP-facing: raised inside a component and reported to its caller.
  PF_ERR_CONFIG: { status: 500, message: 'Invalid configuration' },
  PF_ERR_MANIFEST_INVALID: { status: 502, message: 'The manifest is invalid' },
  PF_ERR_CHUNK_HASH_MISMATCH: { status: 502, message: 'A chunk failed SHA-256 verification' },
  PF_ERR_FILE_HASH_MISMATCH: { status: 502, message: 'The assembled file failed SHA-256 verification' },
  PF_ERR_HTTP_RANGE_MISMATCH: { status: 502, message: 'The HTTP response did not answer the range asked for' },
  PF_ERR_TRACKER_MESSAGE_INVALID: { status: 400, message: 'The tracker message is invalid' },
  PF_ERR_PEER_PROTOCOL: { status: 400, message: 'The peer broke the wire protocol' },
  PF_ERR_STATE_FILE_INVALID: { status: 500, message: 'The local state file is invalid' },
  PF_ERR_STORAGE_QUOTA: { status: 507, message: 'Not enough storage for this file' },
  PF_ERR_STORAGE_FAILED: { status: 507, message: 'Local storage failed (disk full, read-only, permissions)' },
  PF_ERR_OUTPUT_LOCKED: { status: 409, message: 'Another download is writing this output' },
  PF_ERR_OUTPUT_EXISTS: { status: 409, message: 'The output exists and is another file' },
  PF_ERR_ABORTED: { status: 499, message: 'The operation was aborted' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of every peerfill error: a literal `code`, and an HTTP status where one applies. */
export class PfError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** For 429 and 503: when the client may try again (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message ?? ERROR_CODES[code].message, options);
    this.name = 'PfError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** The body sent to clients: the code and a message meant for them, never internals. */
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: string[] };
}

export function isPfError(value: unknown): value is PfError {
  return value instanceof PfError;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
