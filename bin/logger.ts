import { pino, type Logger } from 'pino';

/**
 * The process logger. Request URLs are logged without their query string (signed URLs
 * carry `sig`), and credentials are redacted wherever they appear.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'session_token', '*.session_token', 'sig', '*.sig'],
      censor: '[redacted]',
    },
    serializers: {
      req(request: { method?: string; url?: string; id?: unknown }) {
        return { id: request.id, method: request.method, url: stripQuery(request.url) };
      },
    },
  });
}

export function stripQuery(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const index = url.indexOf('?');
  return index < 0 ? url : `${url.slice(0, index)}?[redacted]`;
}
