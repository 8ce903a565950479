/**
 * Replication as a sidecar, the way Litestream runs beside SQLite: the database host writes its
 * journal, and this separate process ships every sealed segment to object storage, oldest first,
 * with retries. It never seals or touches the live segment. SIGTERM or SIGINT drain the uploads
 * in flight; then it prints what it shipped and exits.
 *
 *   node sidecar.mjs <journal-dir> <storage>
 *
 * (`graphstream replicate <journal-dir> <storage>` is this program with flags and metrics.)
 */
import { once } from 'node:events';
import { Uploader, openStorage } from 'graphstream';

const [journalDir, storageUrl] = process.argv.slice(2);
if (journalDir === undefined || storageUrl === undefined) {
  console.error('usage: sidecar <journal-dir> <storage>');
  process.exitCode = 2;
} else {
  const storage = await openStorage(storageUrl);
  const uploader = new Uploader({ directory: journalDir, storage, prefix: 'wal/', db: 'people', sealIntervalMs: 200 });
  uploader.on('uploaded', (record) => console.log(`uploaded ${record.name} -> ${record.key}`));
  uploader.on('error', (err) => console.error(`upload problem [${err.code}]: ${err.message}`));
  const stopped = Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]);
  try {
    await uploader.start();
    console.log('replicating');
    await stopped;
    await uploader.stop(); // waits for the uploads in flight
    const { succeeded, failed, bytes } = uploader.stats();
    console.log(JSON.stringify({ succeeded, failed, bytes }));
  } finally {
    await uploader.stop();
    await storage.close?.();
  }
}
