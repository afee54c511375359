import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { PfError, type ErrorCode } from './errors.ts';

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/**
 * A compiled runtime check for one schema. Everything that arrives from a socket,
 * a peer or a file is `unknown` until a codec accepts it.
 */
export interface Codec<S extends TSchema> {
  readonly schema: S;
  is(value: unknown): value is Static<S>;
  decode(value: unknown): DecodeResult<Static<S>>;
  /** Like decode, but throws a PfError carrying `code` and the first errors. */
  parse(value: unknown, code?: ErrorCode): Static<S>;
}

const MAX_REPORTED_ERRORS = 5;

export function createCodec<S extends TSchema>(schema: S): Codec<S> {
  const compiled = TypeCompiler.Compile(schema);
  const decode = (value: unknown): DecodeResult<Static<S>> => {
    if (compiled.Check(value)) return { ok: true, value };
    const errors: string[] = [];
    for (const error of compiled.Errors(value)) {
      errors.push(`${error.path || '/'}: ${error.message}`);
      if (errors.length >= MAX_REPORTED_ERRORS) break;
    }
    return { ok: false, errors };
  };
  return {
    schema,
    is: (value: unknown): value is Static<S> => compiled.Check(value),
    decode,
    parse(value, code = 'PF_ERR_VALIDATION') {
      const result = decode(value);
      if (result.ok) return result.value;
      throw new PfError(code, result.errors.join('; '));
    },
  };
}

/** JSON.parse that never throws: malformed text is a decode error, not an exception. */
export function parseJson(text: string): DecodeResult<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, errors: [`invalid JSON: ${(error as Error).message}`] };
  }
}
