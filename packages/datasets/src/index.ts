export { DatasetError } from './errors.js';
export { type Example, type Metric, type Task, makeExample, optionsOf, referencesOf } from './task.js';
export { loadTasks, type LoadTasksOptions, type LoadedTasks, type TaskFormat } from './load.js';
export { loadSniTask, loadSniSplit, readTaskList, type TaskSplit } from './formats/sni.js';
export { loadMetaIclDir, loadMetaIclSplit, type MetaIclOptions } from './formats/metaicl.js';
export { loadLineTask, type LineFormat } from './formats/lines.js';
export { exportSniTasks } from './export.js';
export { symbolize, type SymbolizeOptions } from './symbolize.js';
export * from './synthetic/index.js';
export {
  DEFAULT_CORPUS,
  defaultCorpus,
  readCorpus,
  readTextFile,
  readTextFolder,
  type TextDocument,
} from './corpus.js';
export * from './sampler.js';
export * from './collate.js';
