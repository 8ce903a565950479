/** The golden vectors of FORMAT.md (copied unchanged into __test__/fixtures/vectors/). */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ParamValue } from '../../ts/payload/params.js';

export const VECTORS_DIR = fileURLToPath(new URL('../fixtures/vectors/', import.meta.url));

export type ManifestValue =
  | { type: 'null' }
  | { type: 'bool'; value: boolean }
  | { type: 'int'; value: string }
  | { type: 'float'; value: number }
  | { type: 'bytes'; hex: string }
  | { type: 'list'; value: ManifestValue[] }
  | { type: 'map'; value: [string, ManifestValue][] }
  | { type: 'point'; srid: number; x: number; y: number; z: number | null }
  | { type: 'string' | 'date' | 'time' | 'localtime' | 'datetime' | 'localdatetime' | 'duration'; value: string };

export interface ManifestEntry {
  sequence: number;
  prev_hash: string;
  payload: string;
  entry_bytes: string;
  hash: string;
  decoded: { sequence: number; query: string; params: [string, ManifestValue][]; timestamp_ms: number };
}

export interface Manifest {
  created_ms: number;
  entries: ManifestEntry[];
  files: Record<string, { expect: string; sha256: string; size: number }>;
  chain_hash: string;
  segment_key_example: { prefix: string; db: string; generation: number; first_seq: number; key: string };
  local_file_example: { first_seq: number; name: string };
}

export const manifest = JSON.parse(readFileSync(`${VECTORS_DIR}manifest.json`, 'utf8')) as Manifest;

export const vectorFiles = readdirSync(VECTORS_DIR).filter((name) => name.endsWith('.hadbj'));

export function readVector(name: string): Buffer {
  return readFileSync(`${VECTORS_DIR}${name}`);
}

export const hex = (value: string): Buffer => Buffer.from(value, 'hex');

/** The ParamValue a manifest value describes. */
export function paramFromManifest(value: ManifestValue): ParamValue {
  switch (value.type) {
    case 'null':
      return ParamValue.null();
    case 'bool':
      return ParamValue.bool(value.value);
    case 'int':
      return ParamValue.int(BigInt(value.value));
    case 'float':
      return ParamValue.float(value.value);
    case 'bytes':
      return ParamValue.bytes(hex(value.hex));
    case 'list':
      return ParamValue.list(value.value.map(paramFromManifest));
    case 'map':
      return ParamValue.map(value.value.map(([key, item]) => [key, paramFromManifest(item)] as const));
    case 'point':
      return ParamValue.point(value.z === null ? { srid: value.srid, x: value.x, y: value.y } : { srid: value.srid, x: value.x, y: value.y, z: value.z });
    default:
      return ParamValue[value.type](value.value);
  }
}
