import type { FormatCore } from '../format/format.js';
import {
  computeEntryHash,
  crc32c,
  decodeEntry,
  decodeHeader,
  decodeSegment,
  encodeEntries,
  encodeEntry,
  encodeHeader,
  sealSegment,
} from './format.js';

/**
 * The pure core's format functions (ts/pure/index.ts adds the writer to make
 * `pureCore`). There is no worker thread here: the async variants run the
 * same code on the calling thread and return Promises (so a failure is a
 * rejection, never a synchronous throw).
 */
export const pureFormatCore: FormatCore = {
  kind: 'pure',
  crc32c,
  computeEntryHash,
  encodeEntry,
  encodeEntries,
  decodeEntry,
  encodeHeader,
  decodeHeader,
  sealSegment,
  sealSegmentAsync: async (unsealed, options) => sealSegment(unsealed, options),
  decodeSegment,
  decodeSegmentAsync: async (bytes, options) => decodeSegment(bytes, options),
};
