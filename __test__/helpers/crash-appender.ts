/**
 * Child process of __test__/crash.test.ts (bundled with esbuild, run with node).
 *
 *   crash-appender <native|pure> <dir> append   appends forever from 8 concurrent callers with
 *                                               durability 'fsync', printing `ack <seq>` for each
 *                                               acknowledged append, until it is killed
 *   crash-appender <native|pure> <dir> efbig    run under a file-size limit: an append that passes
 *                                               it must be rejected, and the journal stay usable
 *   crash-appender <native|pure> <dir> fill     <dir> is a tiny tmpfs: appends until the disk is full,
 *                                               then reports the error, reopens and reads back
 *
 * An optional last argument sets the durability (default 'fsync'): with 'none' the native core
 * appends on the JavaScript thread (CoreWriter.appendNow), a path these modes must cover too.
 */
import type { Core, Durability } from '../../ts/core/core.js';
import { toGraphstreamError } from '../../ts/errors.js';
import { Journal } from '../../ts/journal/journal.js';
import { readJournal } from '../../ts/journal/reader.js';
import { loadCore, say } from './child-core.js';

const [kind, dir, mode, durabilityArg] = process.argv.slice(2);
const durability = (durabilityArg ?? 'fsync') as Durability;

async function appendForever(core: Core): Promise<void> {
  const journal = await Journal.open(dir!, { core, maxSegmentBytes: 4096, durability });
  say(`start ${journal.sequence}`);
  let counter = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (;;) {
        const i = counter++;
        const { sequence } = await journal.append({
          query: 'CREATE (:Item {i: $i, pad: $pad})',
          params: { i, pad: 'x'.repeat((i * 37) % 300) },
        });
        say(`ack ${sequence}`);
      }
    }),
  );
}

async function appendPastFileLimit(core: Core): Promise<void> {
  const journal = await Journal.open(dir!, { core, maxSegmentBytes: 1 << 20, durability });
  say(`ack ${(await journal.appendRaw(Buffer.from('before'))).sequence}`);
  try {
    await journal.appendRaw(Buffer.alloc(64 * 1024, 7));
    say('accepted');
  } catch (err) {
    say(`rejected ${toGraphstreamError(err).code}`);
  }
  say(`alive ${journal.alive}`);
  say(`ack ${(await journal.appendRaw(Buffer.from('after'))).sequence}`);
  await journal.close();
  say('closed');
}

async function fillTheDisk(core: Core): Promise<void> {
  const journal = await Journal.open(dir!, { core, maxSegmentBytes: 32 * 1024, compression: 'none', durability });
  let acknowledged = 0;
  for (let i = 0; ; i++) {
    try {
      acknowledged = (await journal.appendRaw(Buffer.alloc(1024, i % 251))).sequence;
    } catch (err) {
      say(`rejected ${toGraphstreamError(err).code}`);
      break;
    }
  }
  say(`acknowledged ${acknowledged}`);
  await journal.close().catch((err: unknown) => say(`close ${toGraphstreamError(err).code}`));
  const reopened = await Journal.open(dir!, { core, maxSegmentBytes: 32 * 1024, compression: 'none' });
  say(`reopened ${reopened.sequence}`);
  let expected = 1;
  for await (const record of readJournal(dir!, { core, raw: true })) {
    if (record.sequence !== expected || record.payload[0] !== (expected - 1) % 251) throw new Error(`entry ${expected} is wrong`);
    expected++;
  }
  say(`read ${expected - 1}`);
  await reopened.close().catch(() => undefined);
}

const core = await loadCore(kind);
const modes: Record<string, (core: Core) => Promise<void>> = {
  append: appendForever,
  efbig: appendPastFileLimit,
  fill: fillTheDisk,
};
await modes[mode!]!(core);
