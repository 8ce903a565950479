/**
 * The head hint: `head.json` in a journal directory names the newest segment
 * and the one before it, `{"segment":"journal-….hadbj","previous":"journal-….hadbj"}`
 * (previous null when the writer knows of none), so that recovery can start
 * from them instead of listing a directory of thousands of segments.
 *
 * Both writers (crate/src/writer.rs, ts/pure/writer.ts) rewrite it each time
 * they create a segment, and recovery when it finds the hint out of date. It is
 * only a hint: written as temp file + rename without fsync, and a failure to
 * write it is ignored. Recovery checks everything it says against the segments
 * and lists the directory whenever something does not hold, so a missing,
 * stale or torn hint costs time, never correctness.
 */
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const HEAD_HINT_FILE = 'head.json';
const HEAD_HINT_TEMP = 'head.json.tmp';

export interface HeadHint {
  /** file name of the newest segment */
  segment: string;
  /** file name of the segment before it, or null */
  previous: string | null;
}

/** Writes `dir/head.json`. Best effort: never throws. */
export async function writeHeadHint(dir: string, hint: HeadHint): Promise<void> {
  const temp = join(dir, HEAD_HINT_TEMP);
  try {
    await writeFile(temp, JSON.stringify({ segment: hint.segment, previous: hint.previous }) + '\n');
    await rename(temp, join(dir, HEAD_HINT_FILE));
  } catch {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Reads `dir/head.json`: null when there is none or it does not have the
 * hint's shape. The names are not checked here (recovery checks them).
 */
export async function readHeadHint(dir: string): Promise<HeadHint | null> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, HEAD_HINT_FILE), 'utf8'));
  } catch {
    return null;
  }
  const { segment, previous } = (parsed ?? {}) as { segment?: unknown; previous?: unknown };
  if (typeof segment !== 'string' || (previous !== null && typeof previous !== 'string')) return null;
  return { segment, previous };
}
