/** The segments of one db in object storage, as keys `{prefix}{db}/{generation:04x}/{firstSeq:016x}.hadbj`. */
import type { SegmentStorage } from '../storage/types.js';

export interface RemoteSegment {
  key: string;
  /** where the key is, for messages: the storage location and the key */
  url: string;
  generation: number;
  firstSeq: number;
}

export interface RemoteListing {
  /** segment keys, by generation then first sequence */
  segments: RemoteSegment[];
  /** keys under the db's prefix that are not segment keys, as URLs */
  foreign: string[];
}

const SEGMENT_KEY = /^([0-9a-f]{4})\/([0-9a-f]{16})\.hadbj$/;

export function dbKeyPrefix(prefix: string, db: string): string {
  return `${prefix}${db}/`;
}

/** Lists the db's keys; `location` (the storage URL, ending in '/') names them in messages. */
export async function listRemoteSegments(storage: SegmentStorage, prefix: string, db: string, location: string): Promise<RemoteListing> {
  const base = dbKeyPrefix(prefix, db);
  const segments: RemoteSegment[] = [];
  const foreign: string[] = [];
  for (const key of await storage.list(base)) {
    const match = SEGMENT_KEY.exec(key.slice(base.length));
    const firstSeq = match ? Number.parseInt(match[2]!, 16) : NaN;
    if (match && Number.isSafeInteger(firstSeq)) segments.push({ key, url: location + key, generation: Number.parseInt(match[1]!, 16), firstSeq });
    else foreign.push(location + key);
  }
  segments.sort((a, b) => a.generation - b.generation || a.firstSeq - b.firstSeq);
  return { segments, foreign };
}
