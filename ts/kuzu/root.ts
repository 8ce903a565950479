/**
 * What graphstream/kuzu takes from the package root. The subpath's bundle imports these from
 * 'graphstream' itself (tsup.config.ts) instead of carrying copies, so a `ParamValue` made with
 * the root's constructors is one here too (a copy's class would not be the root's).
 */
export { GraphstreamError, ParamValue, TypedParam, computeEntryHash, decodeJournalEntry, encodeJournalEntry, readJournal } from '../index.js';
