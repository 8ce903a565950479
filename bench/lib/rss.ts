/**
 * Resident memory of this process from /proc/self/status (Linux): VmHWM is the peak since exec.
 * getrusage's maxRSS is not used: on Linux a spawned child inherits the parent's high-water mark.
 */
import { readFileSync } from 'node:fs';

function statusKiB(field: 'VmHWM' | 'VmRSS'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

export const peakRssKiB = () => statusKiB('VmHWM');
export const currentRssKiB = () => statusKiB('VmRSS');
