import type { Core } from '../core/core.js';
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
import { decryptSegment, encryptSegment } from './crypto.js';
import { openWriter } from './writer.js';

/**
 * The pure-TypeScript core: the format functions of ./format.ts and the writer of ./writer.ts.
 * There is no worker thread here: the async variants run the same code on the calling thread
 * and return Promises (so a failure is a rejection, never a synchronous throw).
 */
export const pureCore: Core = {
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
  encryptSegment,
  decryptSegment,
  openWriter,
};
