/**
 * Taking over a db: a follower that holds the lease of a new epoch and has caught up with
 * everything the earlier generations hold starts its own generation (FORMAT.md, "Ownership and
 * generations"). Its generation record says where the generation starts (one past the follower's
 * tip, continuing its chain hash), and is written create-only before any segment of it; the
 * follower's directory then opens as the writable Journal that continues the chain, and an
 * Uploader with `generation` and `firstSeq` from here ships only what the new writer appends.
 */
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { Journal, type JournalOptions } from '../journal/journal.js';
import type { ChainPosition } from '../journal/recovery.js';
import { objectName } from '../storage/names.js';
import { generationRecordKey } from './layout.js';
import { serializeGenerationRecord, type GenerationRecord } from './ownership.js';
import type { RemoteLocation } from './remote-journal.js';

/** Who writes the new generation: the lease it holds. */
export interface GenerationOwner {
  /** the generation the lease gives it (never one that has a record or a segment yet) */
  generation: number;
  epoch: number;
  holder: string;
}

export interface NewGeneration {
  record: GenerationRecord;
  /** the follower's directory, writable, continuing the chain at record.startSeq */
  journal: Journal;
}

/**
 * Writes the generation record of `owner.generation` starting after `tip` (the follower's, caught
 * up after the old lease ended) and opens `dir` as a Journal that continues from there. A record
 * already there is a `conflict`: another writer took that generation.
 */
export async function beginGeneration(
  location: RemoteLocation,
  dir: string,
  tip: ChainPosition,
  owner: GenerationOwner,
  journalOptions: JournalOptions = {},
): Promise<NewGeneration> {
  const { storage, prefix = '', db } = location;
  const key = generationRecordKey(prefix, db, owner.generation);
  const record: GenerationRecord = {
    generation: owner.generation,
    epoch: owner.epoch,
    holder: owner.holder,
    startSeq: tip.sequence + 1,
    prevHash: Buffer.from(tip.chainHash),
    writtenMs: Date.now(),
  };
  const bytes = serializeGenerationRecord(record);
  try {
    await storage.put(key, bytes, { ifNoneMatch: '*' });
  } catch (err) {
    throw toGraphstreamError(err, `writing ${objectName(storage.description, key)}`);
  }
  const journal = await Journal.open(dir, journalOptions);
  if (journal.sequence !== tip.sequence || !journal.chainHash.equals(tip.chainHash)) {
    await journal.close();
    throw new GraphstreamError(
      'conflict',
      `${dir} ends at sequence ${journal.sequence}, not at ${tip.sequence} where generation ${owner.generation} starts ` +
        `(${objectName(storage.description, key)}): the directory changed while it was promoted`,
    );
  }
  return { record, journal };
}
