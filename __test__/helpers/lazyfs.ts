/**
 * Mounts the lazy file system (lazyfs.py beside this file) for power-loss tests: a FUSE file
 * system over a backing directory that keeps unsynced data and un-fsynced directory changes
 * volatile, and drops them at `crash()`. Needs libfuse 3 and mfusepy (scripts/ensure-fuse.mjs,
 * run by `npm test`'s pretest, installs them) and the right to mount (root, /dev/fuse).
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, waitFor } from './child-process.js';
import { tempDir } from './journal-fixtures.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'lazyfs.py');
const python = process.env.PYTHON ?? 'python3';

export interface LazyFs {
  /** where the file system is mounted: the directory the test works in */
  readonly root: string;
  /** a power loss: what was not made durable is gone, the rest is served from now on */
  crash(): Promise<void>;
  unmount(): Promise<void>;
}

/** Runs `body` on a freshly mounted lazy file system, unmounted afterwards. */
export async function withLazyFs<T>(body: (fs: LazyFs) => Promise<T>): Promise<T> {
  const fs = await mountLazyFs();
  try {
    return await body(fs);
  } finally {
    await fs.unmount();
  }
}

export async function mountLazyFs(): Promise<LazyFs> {
  const base = await tempDir('lazyfs');
  const backing = join(base, 'backing');
  const root = join(base, 'mnt');
  await mkdir(backing);
  await mkdir(root);
  const child = run(python, [script, backing, root], { stdin: true });
  let mounted = true;
  const fail = (what: string) => new Error(`lazyfs ${what}; stderr:\n${child.stderr()}`);
  void child.exited.then(() => (mounted = false));
  try {
    await waitFor(child, (lines) => lines.includes('ready'), 'ready (is libfuse 3 installed? see scripts/ensure-fuse.mjs)');
  } catch (err) {
    child.kill();
    throw err;
  }
  let crashes = 0;
  return {
    root,
    async crash() {
      if (!mounted) throw fail('exited');
      child.send('crash');
      crashes++;
      await waitFor(child, (lines) => lines.filter((line) => line === 'crashed').length === crashes, 'crashed');
    },
    async unmount() {
      if (!mounted) return;
      child.endInput();
      const timeout = setTimeout(() => {
        spawnSync('umount', ['-l', root]);
        child.kill();
      }, 5_000);
      await child.exited;
      clearTimeout(timeout);
    },
  };
}
