export { GistAttentionError } from './errors.js';
export { type Rows, type GistSpan, findGistPositions, padRows } from './layout.js';
export {
  type Visibility,
  type MaskOptions,
  spanVisibility,
  gistVisibility,
  downstreamVisibility,
  toAdditiveMask,
  toBooleanMask,
  gistMask,
  downstreamMask,
} from './masks.js';
export {
  type PositionScheme,
  positionIdsFromMask,
  positionTensor,
  hyperPositionIds,
  downstreamOffsets,
  downstreamPositionIds,
} from './positions.js';
export { Prefix, type PrefixParts, type ExtractOptions, extractGistPrefix } from './prefix.js';
