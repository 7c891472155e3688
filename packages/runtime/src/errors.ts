/**
 * Base class of every error the project throws on purpose. `code` is a stable, machine-readable string
 * (e.g. `SAFETENSORS_BAD_HEADER`); the message names the file, field, expected and actual values.
 * Each package derives its own subclasses so callers can `instanceof`-check by package or catch them all here.
 */
export class HyperLlamaError extends Error {
  readonly code: string;
  /** Structured details (file, field, expected, actual, ...) for programmatic handling. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** Errors of `@hyperllama/runtime` that are not about a particular file format. */
export class RuntimeError extends HyperLlamaError {}

/** A safetensors file or buffer that violates the format, or a tensor that cannot be written. */
export class SafetensorsError extends HyperLlamaError {}

/** An unknown or unavailable backend, or a backend that failed to initialise. */
export class BackendError extends HyperLlamaError {}

/** Bad option values given to an optimizer, schedule or the PRNG (out of range, wrong type, mismatched state). */
export class OptionError extends HyperLlamaError {}

/** Throws an {@link OptionError} unless `ok`; `what` names the option, `value` is what was given. */
export function assertOption(ok: boolean, what: string, expected: string, value: unknown): asserts ok {
  if (!ok) {
    throw new OptionError('BAD_OPTION', `${what}: expected ${expected}, got ${JSON.stringify(value)}`, {
      field: what,
      expected,
      actual: value,
    });
  }
}

/** A GGUF file or buffer that violates the format, or metadata and tensors that cannot be written as GGUF. */
export class GgufError extends HyperLlamaError {}
