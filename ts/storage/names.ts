/**
 * The names graphstream gives storage, checked in one place so that every backend maps a name to
 * the same object: object keys, list prefixes, and the `prefix` and `db` of a remote journal.
 * A name is relative and '/'-separated; no segment is empty, `.` or `..`; no name holds a
 * backslash (a separator on Windows), NUL or another control character.
 */
import { GraphstreamError } from '../errors.js';

const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;

function badSegment(segment: string): boolean {
  return segment === '' || segment === '.' || segment === '..';
}

function invalid(what: string, name: string, rule: string): GraphstreamError {
  return new GraphstreamError('invalid_argument', `invalid ${what} ${JSON.stringify(name)}: ${rule}`, {
    details: { key: name, retryable: false },
  });
}

const KEY_RULE = "keys are relative, '/'-separated, without empty, '.' or '..' segments, backslashes or control characters";

/** An object key: `a/b/c`. `where` is the storage's description, for the message. */
export function checkKey(key: string, where: string): void {
  if (typeof key !== 'string' || FORBIDDEN.test(key) || key.split('/').some(badSegment)) {
    throw invalid(`storage key for ${where}:`, String(key), KEY_RULE);
  }
}

/** A list prefix: a key, a key's start (`a/b`, `a/b/`, `a/b/c0`), or empty. */
export function checkListPrefix(prefix: string, where: string): void {
  if (typeof prefix !== 'string' || FORBIDDEN.test(prefix) || prefix.split('/').slice(0, -1).some(badSegment)) {
    throw invalid(`list prefix for ${where}:`, String(prefix), KEY_RULE);
  }
}

/** The `prefix` of a remote journal: empty, or segments each followed by '/' (`wal/`, `a/b/`). */
export function checkPrefix(prefix: string, who: string): void {
  const valid = typeof prefix === 'string' && (prefix === '' || (prefix.endsWith('/') && !FORBIDDEN.test(prefix) && !prefix.slice(0, -1).split('/').some(badSegment)));
  if (!valid) {
    throw invalid(`${who} prefix`, String(prefix), "a prefix is empty or ends with '/'; it is relative, without empty, '.' or '..' segments, backslashes or control characters");
  }
}

/** The `db` of a remote journal: one path segment. */
export function checkDb(db: string, who: string): void {
  if (typeof db !== 'string' || db.includes('/') || FORBIDDEN.test(db) || badSegment(db)) {
    throw invalid(`${who} db`, String(db), "a db is a non-empty name with no '/', backslash or control character, and not '.' or '..'");
  }
}

/** A number in a segment's key or file name (a generation, a first sequence): an integer in 0..2^53-1. */
export function checkNameNumber(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new GraphstreamError('invalid_argument', `${what} must be a non-negative integer below 2^53, got ${String(value)}`);
  }
}

/** The object at `key` of the storage `description` names, for messages: `s3://bucket/prefix/key`. */
export function objectName(description: string, key: string): string {
  return description.endsWith('/') ? description + key : `${description}/${key}`;
}
