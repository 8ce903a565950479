/**
 * Child process of __test__/cli.test.ts (bundled with esbuild, run with node): a journal writer in
 * a process of its own, as the graph database is next to `graphstream replicate`.
 *
 *   cli-writer <dir> <maxSegmentBytes>
 *
 * Reads commands from stdin: `append <n>` appends n entries (rotation seals full segments) and
 * answers `at <sequence>`. It never closes the journal: its live segment stays unsealed until the
 * process is killed or stdin ends.
 */
import { createInterface } from 'node:readline';
import { Journal } from '../../ts/journal/journal.js';

const [dir, maxSegmentBytes] = process.argv.slice(2);
const journal = await Journal.open(dir!, { maxSegmentBytes: Number(maxSegmentBytes) });
process.stdout.write(`at ${journal.sequence}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const [command, count] = line.trim().split(/\s+/);
  if (command !== 'append') continue;
  for (let i = 0; i < Number(count); i++) {
    await journal.append({
      query: 'CREATE (:Reading {sensor: $sensor, value: $value, at: $at})',
      params: { sensor: `s-${i % 7}`, value: i / 3, at: journal.sequence + 1 },
    });
  }
  process.stdout.write(`at ${journal.sequence}\n`);
}
