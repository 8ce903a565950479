/**
 * The lazy file system's model of a power loss (the power-loss suite rests on it): after
 * `crash()`, file data survives only as of the file's last fsync, and a create, rename, unlink
 * or mkdir only if its directory was fsynced after it.
 */
import { constants } from 'node:fs';
import { link, mkdir, open, readFile, readdir, rename, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { syncDirectory } from '../ts/journal/durable-fs.js';
import { withLazyFs } from './helpers/lazyfs.js';

async function append(path: string, text: string, { sync }: { sync: boolean }): Promise<void> {
  const handle = await open(path, 'a');
  try {
    await handle.write(text);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A file whose name and content are durable. */
async function durableFile(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await append(path, text, { sync: true });
  await syncDirectory(dir);
  return path;
}

describe('lazy file system', () => {
  test('synced data survives a crash, data written after the last sync does not', async () => {
    await withLazyFs(async (fs) => {
      const path = await durableFile(fs.root, 'a', 'synced ');
      await append(path, 'unsynced', { sync: false });
      expect(await readFile(path, 'utf8')).toBe('synced unsynced');
      await fs.crash();
      expect(await readFile(path, 'utf8')).toBe('synced ');
    });
  });

  test('fdatasync makes data durable like fsync', async () => {
    await withLazyFs(async (fs) => {
      const path = await durableFile(fs.root, 'a', '');
      const handle = await open(path, 'r+');
      await handle.write('data', 0);
      await handle.datasync();
      await handle.close();
      await fs.crash();
      expect(await readFile(path, 'utf8')).toBe('data');
    });
  });

  test('a new file needs a directory fsync for its name and its own fsync for its data', async () => {
    await withLazyFs(async (fs) => {
      await append(join(fs.root, 'only-name'), 'x', { sync: false });
      await append(join(fs.root, 'both'), 'x', { sync: true });
      await syncDirectory(fs.root);
      await append(join(fs.root, 'only-data'), 'x', { sync: true });
      await fs.crash();
      expect((await readdir(fs.root)).sort()).toEqual(['both', 'only-name']);
      expect(await readFile(join(fs.root, 'both'), 'utf8')).toBe('x');
      // the name was durable, the data never synced: the file comes back empty
      expect(await readFile(join(fs.root, 'only-name'), 'utf8')).toBe('');
    });
  });

  test('a rename without a directory fsync is rolled back, with one it survives', async () => {
    await withLazyFs(async (fs) => {
      const old = await durableFile(fs.root, 'old', 'old');
      const temp = join(fs.root, 'temp');
      await append(temp, 'new', { sync: true });
      await rename(temp, old);
      await fs.crash();
      expect(await readdir(fs.root)).toEqual(['old']);
      expect(await readFile(old, 'utf8')).toBe('old');

      await append(temp, 'new', { sync: true });
      await rename(temp, old);
      await syncDirectory(fs.root);
      await fs.crash();
      expect(await readdir(fs.root)).toEqual(['old']);
      expect(await readFile(old, 'utf8')).toBe('new');
    });
  });

  test('an unlink and a hard link need a directory fsync', async () => {
    await withLazyFs(async (fs) => {
      const a = await durableFile(fs.root, 'a', 'a');
      await link(a, join(fs.root, 'b'));
      await unlink(a);
      await fs.crash();
      expect(await readdir(fs.root)).toEqual(['a']);

      await link(a, join(fs.root, 'b'));
      await unlink(a);
      await syncDirectory(fs.root);
      await fs.crash();
      expect(await readdir(fs.root)).toEqual(['b']);
      expect(await readFile(join(fs.root, 'b'), 'utf8')).toBe('a');
    });
  });

  test('a truncation is rolled back unless the file is synced after it', async () => {
    await withLazyFs(async (fs) => {
      const path = await durableFile(fs.root, 'a', '0123456789');
      await truncate(path, 4);
      await fs.crash();
      expect(await readFile(path, 'utf8')).toBe('0123456789');
      const handle = await open(path, 'r+');
      await handle.truncate(4);
      await handle.sync();
      await handle.close();
      await fs.crash();
      expect(await readFile(path, 'utf8')).toBe('0123');
    });
  });

  test('a directory and what is in it survive only through fsyncs of both', async () => {
    await withLazyFs(async (fs) => {
      const sub = join(fs.root, 'sub');
      await mkdir(sub);
      await durableFile(sub, 'f', 'f');
      await fs.crash();
      expect(await readdir(fs.root)).toEqual([]);

      await mkdir(sub);
      await syncDirectory(fs.root);
      await append(join(sub, 'f'), 'f', { sync: true });
      await fs.crash();
      expect(await readdir(sub)).toEqual([]);

      await durableFile(sub, 'f', 'f');
      await fs.crash();
      expect(await readFile(join(sub, 'f'), 'utf8')).toBe('f');
    });
  });

  test('a file left open across a crash is stale, and what it wrote is gone', async () => {
    await withLazyFs(async (fs) => {
      const path = await durableFile(fs.root, 'a', 'a');
      const handle = await open(path, constants.O_RDWR);
      await handle.write('b', 1);
      await fs.crash();
      await expect(handle.write('c', 2)).rejects.toMatchObject({ code: 'EBADF' });
      await handle.close().catch(() => undefined);
      expect(await readFile(path, 'utf8')).toBe('a');
      await writeFile(join(fs.root, 'after'), 'works');
      expect(await readFile(join(fs.root, 'after'), 'utf8')).toBe('works');
    });
  });
});
