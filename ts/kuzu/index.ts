/**
 * graphstream/kuzu: a replicated Kuzu database. `openKuzuLeader` journals every mutation inside
 * its Kuzu transaction (and redoes what a crash left journaled but uncommitted);
 * `replayIntoKuzu` applies a follower's entries exactly once. Works with a `kuzu` (0.11) or
 * LadybugDB `Connection`; this entry never loads either package itself.
 */
export { openKuzuLeader, KuzuLeader, type KuzuLeaderOptions, type KuzuMutation } from './leader.js';
export { replayIntoKuzu, KuzuReplay, type KuzuReplayEvents, type ReplayIntoKuzuOptions } from './replay.js';
export { META_TABLE, readPosition, type KuzuConnection, type KuzuPosition, type KuzuPreparedStatement, type KuzuQueryResult } from './database.js';
export {
  KUZU_MAP_KEY,
  bindForKuzu,
  fromKuzuValue,
  kuzuMap,
  parseKuzuType,
  toParamInput,
  toParamsInput,
  type KuzuBound,
  type KuzuParamInput,
  type KuzuParams,
  type KuzuStatement,
  type KuzuType,
} from './params.js';
export { NONDETERMINISTIC_FUNCTIONS, checkReplayable, scanCypher, type CypherScan, type ParamReference } from './cypher.js';
