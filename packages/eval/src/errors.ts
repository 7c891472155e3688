import { HyperLlamaError } from '@hyperllama/runtime';

/** Bad input to a metric, protocol or report of `@hyperllama/eval` (`details` names the field, expected, actual). */
export class EvalError extends HyperLlamaError {}
