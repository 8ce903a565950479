/**
 * Errors cross from the cores to the facade as data: a core error is an Error whose `code` is one
 * of ERROR_CODES, with facts such as `retryable` and `status` as properties; nothing parses its
 * message. The native core and ts/errors.ts know the same codes.
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { ERROR_CODES, toGraphstreamError } from '../ts/errors.js';
import type * as Native from '../ts/core/native-binding.js';
import { cores } from './helpers/cores.js';

const nativeDir = join(dirname(dirname(fileURLToPath(import.meta.url))), 'native');
const binary = readdirSync(nativeDir).find((name) => /^graphstream\..+\.node$/.test(name));
if (binary === undefined) throw new Error('no native/graphstream.<platform>.node: run `npm run build:native`');
const native = createRequire(import.meta.url)(join(nativeDir, binary)) as typeof Native;

test('the native core and ts/errors.ts list the same error codes', () => {
  expect([...native.errorCodes()].sort()).toEqual([...ERROR_CODES].sort());
});

test.each(cores)('$kind: a core error carries its code as a property, and the message says only what and where', (core) => {
  const thrown = (() => {
    try {
      core.decodeHeader(Buffer.alloc(10));
    } catch (err) {
      return err;
    }
    throw new Error('decodeHeader accepted 10 bytes');
  })();
  expect(thrown).toBeInstanceOf(Error);
  expect(thrown).toMatchObject({ code: 'truncated' });
  const message = (thrown as Error).message;
  expect(message).not.toMatch(/^\[/);
  const mapped = toGraphstreamError(thrown, 'reading x');
  expect(mapped).toMatchObject({ code: 'truncated', message: `reading x: ${message}`, cause: thrown, details: undefined });
});

test.each(cores)('$kind: a rejected promise carries the code too', async (core) => {
  await expect(core.decodeSegmentAsync(Buffer.alloc(10))).rejects.toMatchObject({ code: 'truncated' });
});

test('retry facts travel as properties into the details; Node errno codes keep their mapping', () => {
  const storage = Object.assign(new Error('get s3://b/k failed (retryable; HTTP 503)'), { code: 'storage', retryable: true, status: 503 });
  expect(toGraphstreamError(storage)).toMatchObject({ code: 'storage', message: storage.message, details: { retryable: true, status: 503 } });
  const denied = Object.assign(new Error('denied'), { code: 'storage', retryable: false });
  expect(toGraphstreamError(denied).details).toEqual({ retryable: false });
  const errno = (code: string) => Object.assign(new Error(`${code}: x`), { code });
  expect(toGraphstreamError(errno('ENOENT')).code).toBe('not_found');
  expect(toGraphstreamError(errno('ENOSPC')).code).toBe('disk_full');
  expect(toGraphstreamError(errno('EACCES')).code).toBe('io');
});
