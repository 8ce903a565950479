/**
 * A graph database host's write path: every committed mutation is appended to the journal (and
 * awaited, durable on disk), and an Uploader ships the sealed segments to object storage.
 *
 *   node append-and-ship.mjs <journal-dir> <storage> [count]
 *
 * <storage> is a directory, file:///dir, or s3://bucket/prefix/ (AWS_* variables configure S3).
 */
import { Journal, ParamValue, Uploader, openStorage } from 'graphstream';

const [journalDir, storageUrl, countArg = '1000'] = process.argv.slice(2);
if (journalDir === undefined || storageUrl === undefined) {
  console.error('usage: append-and-ship <journal-dir> <storage> [count]');
  process.exitCode = 2;
} else {
  const count = Number(countArg);
  const journal = await Journal.open(journalDir, { durability: 'fsync' });
  const storage = await openStorage(storageUrl);
  const uploader = new Uploader({ journal, storage, prefix: 'wal/', db: 'people', sealIntervalMs: 200 });
  try {
    await uploader.start();
    let last = { sequence: 0, chainHash: '' };
    for (let id = 1; id <= count; id++) {
      // one awaited append per committed mutation, as a host running Kuzu does
      const { sequence, chainHash } = await journal.append({
        query: 'CREATE (:Person {id: $id, name: $name, born: $born, score: $score})',
        params: {
          id,
          name: `person ${id}`,
          born: ParamValue.date(`19${String(50 + (id % 50)).padStart(2, '0')}-01-01`),
          score: ParamValue.float(id / 10),
        },
      });
      last = { sequence, chainHash: chainHash.toString('hex') };
    }
    await uploader.sync(); // seals the live segment and resolves once everything sealed is in storage
    console.log(JSON.stringify({ appended: count, ...last, uploaded: uploader.stats().succeeded }));
  } finally {
    await uploader.stop();
    await journal.close();
    await storage.close?.();
  }
}
