/**
 * `graphstream/pure`: the public format API bound to the pure-TypeScript core
 * (no native addon), for platforms without a prebuilt binary and as the
 * benchmark baseline. Same functions, same bytes as the package root.
 */
import { createFormatApi } from '../format.js';
import type { Core } from '../core.js';
import { pureFormatCore } from './core.js';
import { openWriter } from './writer.js';

export const pureCore: Core = { ...pureFormatCore, openWriter };

export const {
  crc32c,
  computeEntryHash,
  encodeEntry,
  decodeEntry,
  encodeHeader,
  decodeHeader,
  sealSegment,
  sealSegmentAsync,
  decodeSegment,
  decodeSegmentAsync,
  segmentFileName,
  segmentKey,
} = createFormatApi(pureCore);

export type { DecodedEntry, DecodedSegment, Entry, FormatApi, FormatCore } from '../format.js';
export type { Core, DecodeOptions, HeaderFields, HeaderInit, SealOptions } from '../core.js';
export { GraphstreamError, isGraphstreamError, type ErrorCode } from '../errors.js';
export { ParamValue, TypedParam, type ParamInput, type ParamsInput, type ParamType, type Point } from '../params.js';
export { decodeJournalEntry, encodeJournalEntry, type JournalEntry, type JournalEntryInput } from '../payload.js';
