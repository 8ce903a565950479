/**
 * The graphd schema and @bufbuild/protobuf's decoder, loaded when decoding first needs them.
 *
 * Only decoding uses the protobuf runtime (ts/payload/wire.ts encodes), and loading it costs a process
 * ~7 MiB whether or not it ever decodes an entry; a journal leader only appends. Decoding is
 * synchronous API (`decodeJournalEntry`, `ParamValue.map`), so the runtime is required (its
 * CommonJS build) rather than imported, and the schema is built from the file descriptor that
 * graphd_pb.ts embeds (graphd-descriptor.ts: `npm run build:proto` copies it; a test checks the
 * two agree). graphd_pb.ts itself is imported for its types only: it builds the schema on import.
 */
import { packageRequire } from '../../package-require.js';
import type * as Protobuf from '@bufbuild/protobuf';
import type * as Codegen from '@bufbuild/protobuf/codegenv2';
import type { GraphValueSchema, JournalEntrySchema, MapValueSchema } from './graphd_pb.js';
import { GRAPHD_FILE_DESCRIPTOR } from './graphd-descriptor.js';

export interface GraphdDecoding {
  fromBinary: typeof Protobuf.fromBinary;
  JournalEntrySchema: typeof JournalEntrySchema;
  GraphValueSchema: typeof GraphValueSchema;
  MapValueSchema: typeof MapValueSchema;
}

let decoding: GraphdDecoding | null = null;

export function graphdDecoding(): GraphdDecoding {
  if (decoding !== null) return decoding;
  const { fromBinary } = packageRequire('@bufbuild/protobuf') as typeof Protobuf;
  const { fileDesc } = packageRequire('@bufbuild/protobuf/codegenv2') as typeof Codegen;
  const file = fileDesc(GRAPHD_FILE_DESCRIPTOR);
  const message = <T>(name: string): T => {
    const found = file.messages.find((desc) => desc.typeName === `graphd.${name}`);
    if (found === undefined) throw new Error(`graphd.${name} is missing from the graphd file descriptor`);
    return found as T;
  };
  decoding = {
    fromBinary,
    JournalEntrySchema: message<typeof JournalEntrySchema>('JournalEntry'),
    GraphValueSchema: message<typeof GraphValueSchema>('GraphValue'),
    MapValueSchema: message<typeof MapValueSchema>('MapValue'),
  };
  return decoding;
}
