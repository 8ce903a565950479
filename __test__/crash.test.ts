/**
 * Crash safety with real processes: a child appends with durability 'fsync'
 * (and again with 'none') and prints every acknowledged sequence; it is SIGKILLed at random moments,
 * and each time the journal must reopen with every acknowledged entry, a chain
 * that verifies end to end, and appending continuing at the next sequence.
 * Under 'fsync' the native writer preallocates (its 4 KiB segments are written ahead with zeros,
 * the next one prepared as a spare): the kills land before, during and after that too, the
 * file-size limit case fails its zero write first (the append before it must still be
 * acknowledged), and the full tmpfs runs out during the zeros or an entry's write.
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Core } from '../ts/core/core.js';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { corePairs, cores } from './helpers/cores.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor } from './helpers/child-process.js';
import { tempDir } from './helpers/journal-fixtures.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildDir = join(root, '.vitest-tmp', `crash-${process.pid}`);
const script = join(buildDir, 'crash-appender.mjs');
const ROUNDS = 12;

beforeAll(async () => {
  await bundleScripts({ 'crash-appender': join(root, '__test__/helpers/crash-appender.ts') }, buildDir);
});

afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});

async function verify(dir: string, core: Core): Promise<number> {
  let expected = 1;
  for await (const record of readJournal(dir, { core })) {
    expect(record.sequence).toBe(expected);
    expect(record.entry.sequence).toBe(record.sequence);
    expected++;
  }
  return expected - 1;
}

// 'none' too: an append it acknowledged has reached the OS and must survive a killed process (the
// native core then appends on the JavaScript thread, falling back to its writer thread on errors)
const durabilities = ['fsync', 'none'] as const;

describe.each(cores.flatMap((core) => durabilities.map((durability) => ({ core, kind: core.kind, durability }))))('crash safety ($kind core, durability $durability)', ({ core, durability }) => {
  test('SIGKILL at random moments loses no acknowledged append', { timeout: 120_000 }, async () => {
    const dir = await tempDir('crash');
    let lastAcknowledged = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const child = run(process.execPath, [script, core.kind, dir, 'append', durability]);
      await waitFor(child, (lines) => lines.some((line) => line.startsWith('start ')), 'start');
      const start = Number(child.lines.find((line) => line.startsWith('start '))!.slice(6));
      expect(start).toBeGreaterThanOrEqual(lastAcknowledged);
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 400));
      child.kill();
      const { signal } = await child.exited;
      expect(signal, child.stderr()).toBe('SIGKILL');
      const acks = child.lines.filter((line) => line.startsWith('ack ')).map((line) => Number(line.slice(4)));
      lastAcknowledged = Math.max(lastAcknowledged, ...acks);

      const last = await verify(dir, core);
      expect(last).toBeGreaterThanOrEqual(lastAcknowledged);
      const journal = await Journal.open(dir, { core, maxSegmentBytes: 4096 });
      expect(journal.sequence).toBe(last);
      expect((await journal.append({ query: 'RETURN $round', params: { round } })).sequence).toBe(last + 1);
      await journal.close();
      lastAcknowledged = last + 1;
    }
    expect(await verify(dir, core)).toBe(lastAcknowledged);
  });

  test('an I/O error (file size limit) rejects exactly the append it hits; the journal stays usable', async () => {
    const dir = await tempDir('efbig');
    // 16 KiB file size limit: the 64 KiB append fails with EFBIG (node ignores SIGXFSZ)
    const child = run('bash', ['-c', 'ulimit -f 16 && exec "$0" "$@"', process.execPath, script, core.kind, dir, 'efbig', durability]);
    const { code } = await child.exited;
    expect(code, child.stderr()).toBe(0);
    expect(child.lines).toEqual(['ack 1', 'rejected io', 'alive true', 'ack 2', 'closed']);
    const payloads = [];
    for await (const record of readJournal(dir, { core, raw: true })) payloads.push(record.payload.toString());
    expect(payloads).toEqual(['before', 'after']);
  });

  // A real full disk: a 160 KiB tmpfs mounted in a private mount namespace of the child (unshare),
  // so nothing stays mounted. Needs Linux and root or unprivileged user namespaces.
  test('a full disk rejects the append with disk_full and loses no acknowledged entry', async () => {
    const dir = await tempDir('enospc');
    const asRoot = process.getuid?.() === 0 ? [] : ['--map-root-user'];
    const child = run('unshare', [
      ...asRoot,
      '--mount',
      'sh',
      '-c',
      'mount -t tmpfs -o size=160k tmpfs "$1" && exec "$2" "$3" "$4" "$1" fill "$5"',
      'sh',
      dir,
      process.execPath,
      script,
      core.kind,
      durability,
    ]);
    const { code } = await child.exited;
    expect(code, child.stderr()).toBe(0);
    const value = (key: string) => Number(child.lines.find((line) => line.startsWith(`${key} `))?.split(' ')[1]);
    expect(child.lines).toContain('rejected disk_full');
    const acknowledged = value('acknowledged');
    expect(acknowledged).toBeGreaterThan(50);
    expect(value('reopened')).toBeGreaterThanOrEqual(acknowledged);
    expect(value('read')).toBe(value('reopened'));
  });
});

describe.each(corePairs)('the directory lock across processes', ({ writer: holderCore, reader: openerCore }) => {
  test(`a live ${holderCore.kind} writer in another process locks out a ${openerCore.kind} one; killing it frees the journal`, async () => {
    const dir = await tempDir('lock');
    const holder = run(process.execPath, [script, holderCore.kind, dir, 'append']);
    await waitFor(holder, (lines) => lines.some((line) => line.startsWith('ack ')), 'an ack');
    await expect(Journal.open(dir, { core: openerCore })).rejects.toMatchObject({ code: 'locked' });
    holder.kill();
    await holder.exited;
    const journal = await Journal.open(dir, { core: openerCore });
    expect(journal.sequence).toBe(await verify(dir, openerCore));
    await journal.close();
  });
});

async function procStartTime(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19]);
}

describe.each(cores)('a lock file left by a power loss ($kind core)', (core) => {
  test('names a process that died with the machine: a live unrelated process with its pid does not lock the journal', async () => {
    const unrelated = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      const pid = unrelated.pid!;
      const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      const startTime = await procStartTime(pid);
      const dir = await tempDir('stale-lock');
      const lockFile = join(dir, '.lock');
      const staleContents = [
        `${pid} ${bootId} ${startTime + 1}\n`, // the pid was reused in this boot
        `${pid} 00000000-0000-4000-8000-000000000000 ${startTime}\n`, // written in an earlier boot
      ];
      for (const content of staleContents) {
        await writeFile(lockFile, content);
        const journal = await Journal.open(dir, { core });
        expect(await readFile(lockFile, 'utf8')).toBe(`${process.pid} ${bootId} ${await procStartTime(process.pid)}\n`);
        await journal.append({ query: content });
        await journal.close();
      }
      expect(await verify(dir, core)).toBe(2);
      for (const content of [`${pid} ${bootId} ${startTime}\n`, `${pid}`]) {
        await writeFile(lockFile, content);
        await expect(Journal.open(dir, { core })).rejects.toMatchObject({
          code: 'locked',
          message: expect.stringContaining(`live process ${pid}`),
        });
      }
    } finally {
      unrelated.kill('SIGKILL');
    }
  });
});
