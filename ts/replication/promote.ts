/**
 * Failover: a follower takes over its db (FORMAT.md, "Ownership and generations"). It waits until
 * the lease is released or expires and takes it with the next epoch, which gives it the next
 * generation; only then does it catch up with everything the earlier generations hold (the old
 * writer can no longer add to them: anything it still uploads starts at or past the new
 * generation's start and is stale). Its generation record says where the generation starts (one
 * past the follower's tip, continuing its chain hash) and is written create-only before any
 * segment of it. The follower's directory then opens as the writable Journal that continues the
 * chain, and an Uploader under the lease ships into the new generation what the new writer
 * appends, never the segments before start_seq.
 */
import { GraphstreamError } from '../errors.js';
import { Journal, type JournalOptions } from '../journal/journal.js';
import type { ChainPosition } from '../journal/recovery.js';
import type { Lease, LeaseOptions } from './lease.js';
import type { GenerationRecord } from './ownership.js';
import type { Uploader, UploaderOptions } from './uploader.js';

export interface TakeOverOptions {
  /** the lease to take: its holder (default `{host}/{pid}/{random}`) and TTL (default 10 s) */
  lease?: Pick<LeaseOptions, 'holder' | 'ttlMs'>;
  /** stops waiting for the lease (or catching up) with an AbortError; nothing is written then */
  signal?: AbortSignal;
}

/** A follower that took over: the lease it holds, its generation's record, and where its directory ends. */
export interface TakeOver {
  /** held and renewed */
  lease: Lease;
  record: GenerationRecord;
  /** the follower's tip: record.startSeq - 1 and the chain hash there */
  tip: ChainPosition;
}

export interface PromoteOptions extends TakeOverOptions {
  /** options of the Journal opened on the follower's directory (its core is the follower's) */
  journal?: Omit<JournalOptions, 'core'>;
  /** options of the Uploader that ships the new generation */
  uploader?: Omit<UploaderOptions, 'journal' | 'directory' | 'storage' | 'prefix' | 'db' | 'generation' | 'firstSeq' | 'core' | 'lease'>;
}

/** What a promoted follower hands back: the writer of the new generation. */
export interface Promotion {
  /** the follower's directory, writable, continuing the chain at record.startSeq */
  journal: Journal;
  /** started; ships into record.generation under `lease` (fenced once it is lost) */
  uploader: Uploader;
  /** held and renewed; `uploader.release()` gives it up for a standby to take at once */
  lease: Lease;
  record: GenerationRecord;
}

/** The follower's directory as the Journal continuing at `tip`; `conflict` when it ends elsewhere. */
export async function openContinuing(dir: string, tip: ChainPosition, options: JournalOptions): Promise<Journal> {
  const journal = await Journal.open(dir, options);
  if (journal.sequence !== tip.sequence || !journal.chainHash.equals(tip.chainHash)) {
    await journal.close();
    throw new GraphstreamError(
      'conflict',
      `${dir} ends at sequence ${journal.sequence}, not at ${tip.sequence} where the new generation starts: the directory changed while it was promoted`,
    );
  }
  return journal;
}

