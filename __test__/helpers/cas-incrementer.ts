/**
 * A child process for storage.test.ts: increments a counter object in a LocalStorage `rounds`
 * times by compare-and-swap (getWithETag, then put with ifMatch, again on conflict), printing how
 * many swaps it lost. Two of them at once must never lose an increment.
 */
import { isGraphstreamError } from '../../ts/errors.js';
import { LocalStorage } from '../../ts/storage/local.js';

const [root, key, rounds] = process.argv.slice(2) as [string, string, string];
const storage = new LocalStorage(root);
let lost = 0;
for (let done = 0; done < Number(rounds); ) {
  const current = await storage.getWithETag(key);
  if (current === null) throw new Error(`${key} is missing`);
  const next = new TextEncoder().encode(String(Number(new TextDecoder().decode(current.bytes)) + 1));
  try {
    await storage.put(key, next, { ifMatch: current.etag });
    done++;
  } catch (err) {
    if (!isGraphstreamError(err, 'conflict')) throw err;
    lost++;
  }
}
console.log(`lost ${lost}`);
