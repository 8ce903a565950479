/**
 * Argument parsing shared by the commands: numbers, storage URLs and the storage flags. A bad
 * argument is a commander usage error (exit code 2), never an operational failure.
 */
import { stat } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import { openStorage, type OpenStorageOptions, type SegmentStorage } from '../storage/index.js';
import { checkDb, checkPrefix } from '../storage/names.js';
import { readIdentityFile, type ReadEncryption, type UploadEncryption } from '../replication/encryption.js';

export const USAGE_ERROR_EXIT_CODE = 2;

/** Stops the command with a usage error: main prints `graphstream: error [invalid_argument]: <message>`, the exit code is 2. */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: USAGE_ERROR_EXIT_CODE, code: 'graphstream.usage' });
}

/** A commander argument parser for integers in `min..max`. */
export function integerArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer, got '${value}'.`);
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected an integer in ${min}..${max}, got '${value}'.`);
    }
    return parsed;
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** A size in bytes: an integer, or a number with a unit (KiB, MiB, GiB, KB, MB, GB); at least 1. */
export function sizeArg(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  const bytes = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new InvalidArgumentError(`expected a size in bytes (e.g. 1048576, 256MiB, 1GiB), got '${value}'.`);
  return bytes;
}

/** `--to-time`: an ISO 8601 date-time or milliseconds since the epoch. */
export function timeArg(value: string): number {
  const trimmed = value.trim();
  const ms = /^-?\d+$/.test(trimmed) ? Number(trimmed) : Date.parse(trimmed);
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError(`expected an ISO 8601 time (2026-01-01T12:00:00Z) or milliseconds since the epoch, got '${value}'.`);
  }
  return ms;
}

/** `host:port` (`[::1]:9464` for IPv6); the host may be omitted (`:9464`, all interfaces). */
export function addressArg(value: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`expected host:port (e.g. 127.0.0.1:9464), got '${value}'.`);
  }
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

/** The library's check of a name, failing as a usage error. */
function checkedArg(check: (value: string, who: string) => void, value: string, flag: string): string {
  try {
    check(value, flag);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
  return value;
}

/** Key prefix as the storage layer wants it: empty, or ending in '/'. */
export function prefixArg(value: string): string {
  const trimmed = value.trim().replace(/^\/+/, '');
  return checkedArg(checkPrefix, trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`, '--prefix');
}

export function dbArg(value: string): string {
  return checkedArg(checkDb, value, '--db');
}

export interface StorageFlags {
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
}

/** Adds the S3 connection flags; credentials come from the standard AWS environment variables. */
export function withStorageOptions(command: Command): Command {
  return command
    .option('--endpoint <url>', 'S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (default: AWS_REGION / AWS_DEFAULT_REGION)')
    .option('--path-style', 'address buckets in the path, not the host name (default when an endpoint is set)')
    .addHelpText(
      'after',
      '\nStorage URLs: s3://bucket[/prefix], file:///dir, a directory path, memory://.\n' +
        'Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN),\n' +
        'else the AWS SDK chain.',
    );
}

/** Opens the storage a URL names; a malformed URL is a usage error. */
export async function openStorageArg(command: Command, url: string, flags: StorageFlags): Promise<SegmentStorage> {
  const options: OpenStorageOptions = {};
  if (flags.endpoint !== undefined) options.endpoint = flags.endpoint;
  if (flags.region !== undefined) options.region = flags.region;
  if (flags.pathStyle === true) options.forcePathStyle = true;
  try {
    return await openStorage(url, options);
  } catch (err) {
    if (isGraphstreamError(err, 'invalid_argument')) usageError(command, err.message);
    throw err;
  }
}

export function isStorageUrl(target: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.test(target);
}

/**
 * Splits `s3://bucket/prefix/db` (or `file:///root/prefix/db`) into the storage URL of its parent
 * and the db name: the db's segments are the keys `db/...` of that storage.
 */
export function splitDbUrl(url: string): { storageUrl: string; db: string } | null {
  const match = /^(.*?:\/\/[^/]*\/(?:.*\/)?)([^/]+)\/*$/.exec(url);
  if (!match) return null;
  return { storageUrl: match[1]!, db: match[2]! };
}

/** Fails unless `dir` is an existing directory: `invalid_argument` for another kind of file. */
export async function requireDirectory(dir: string): Promise<void> {
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    throw toGraphstreamError(err, `journal directory ${dir}`);
  }
  if (!info.isDirectory()) throw new GraphstreamError('invalid_argument', `${dir} is not a directory`);
}

export interface EncryptionFlags {
  ageRecipient?: string[];
  ageIdentityFile?: string;
}

/**
 * Adds the age flags (docs/FORMAT.md, "Encrypted objects"): `--age-recipient` for commands that
 * upload, `--age-identity-file` for commands that read; or their environment variables.
 */
export function withEncryptionOptions(command: Command, uses: { upload?: boolean; read?: boolean }): Command {
  if (uses.upload) {
    command.addOption(
      new Option('--age-recipient <age1...>', 'encrypt uploaded segments to this age X25519 recipient; repeatable (the variable: comma or space separated)')
        .env('GRAPHSTREAM_AGE_RECIPIENTS')
        .argParser((value: string, previous: string[] = []) => [...previous, ...value.split(/[\s,]+/).filter((recipient) => recipient !== '')]),
    );
  }
  if (uses.read) {
    command.addOption(
      new Option('--age-identity-file <path>', 'open encrypted segments with the identities of this age identity file; plaintext ones are then refused').env(
        'GRAPHSTREAM_AGE_IDENTITY_FILE',
      ),
    );
  }
  return command;
}

/** Whom uploads are encrypted to (--age-recipient); undefined for plaintext. */
export function uploadEncryptionArg(flags: EncryptionFlags): UploadEncryption | undefined {
  return flags.ageRecipient === undefined || flags.ageRecipient.length === 0 ? undefined : { recipients: flags.ageRecipient };
}

/** The identities readers open objects with (--age-identity-file); undefined for none. */
export async function readEncryptionArg(flags: EncryptionFlags): Promise<ReadEncryption | undefined> {
  return flags.ageIdentityFile === undefined || flags.ageIdentityFile === '' ? undefined : { identities: await readIdentityFile(flags.ageIdentityFile) };
}
