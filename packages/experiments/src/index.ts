export * from './analyses/index.js';
export {
  runMiniature,
  miniatureTasks,
  miniatureGates,
  BUDGETS,
  LEARNING_RATES,
  SHOTS,
  ICL_GATE_POINTS,
  type MiniatureBudget,
  type MiniatureOptions,
  type MiniatureIo,
  type MiniatureResult,
} from './miniature.js';
export { screenFamilies, SCREEN_MIN_GAIN, DEV_SEED_OFFSET, type FamilyScreen, type ScreenOptions } from './screen.js';
