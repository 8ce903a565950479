/**
 * `require` for the CommonJS dependencies that are loaded lazily (prom-client, zstd-wasm, the
 * protobuf runtime). In a CommonJS bundle of the ESM build import.meta.url is empty, and
 * __filename says where this module is.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const packageRequire: NodeJS.Require = createRequire(import.meta.url ? fileURLToPath(import.meta.url) : __filename);
