export { TrainerError } from './errors.js';
export {
  STAGES,
  METHODS,
  PREFIX_INITS,
  SCHEMA,
  defaultConfig,
  applyPatch,
  readConfigFile,
  parseSetting,
  optionHelp,
  type Stage,
  type TrainConfig,
} from './config.js';
export { englishLexicon } from './lexicon.js';
export { charTokenizer, wordTokenizer, BUILTIN_TOKENIZERS, WORD_VOCAB_SIZE } from './tiny.js';
export {
  STAGE_OUTPUT,
  scratchConfig,
  resolveTasks,
  trainingEpisodes,
  resolveTokenizer,
  holdOutInstances,
  shotRange,
  type TaskSets,
} from './setup.js';
export { buildJob, type Job, type SwapControl } from './jobs.js';
export { runStage, restoreCheckpoint, truncateMetrics, FINAL_DIR, type RunOptions, type RunResult } from './train.js';
export { acquireRunLock, LOCK_FILE } from './lock.js';
export { Progress, processIo, type Io } from './progress.js';
