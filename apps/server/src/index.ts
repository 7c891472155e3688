export { Engine, EngineBusyError, type EngineOptions, type SequenceRequest, type SequenceResult } from './engine.js';
export {
  PrefixStore,
  PrefixStoreError,
  normalizeTask,
  prefixId,
  prefixBytes,
  type PrefixInfo,
  type TaskSpec,
} from './store.js';
export {
  RequestError,
  loadService,
  compressTask,
  completionPrompt,
  classify,
  type Service,
  type ServiceOptions,
} from './service.js';
export { buildApp, keyMatches, type AppOptions, type ApiError } from './app.js';
export { serve, type ServeOptions, type RunningServer } from './server.js';
export { parseServeArgs, USAGE } from './args.js';
