/**
 * What the CLI prints and how: results on stdout, progress and diagnostics on stderr. A progress
 * bar is drawn only when stderr is a terminal, so piped output stays clean and greppable.
 */
import type { Writable } from 'node:stream';
import type { ParamValue } from '../payload/params.js';

/** A value in the JSON form of FORMAT.md's vector manifest: ints as decimal strings, bytes as hex. */
export type ParamJson =
  | { type: 'null' }
  | { type: 'bytes'; hex: string }
  | { type: 'point'; srid: number; x: number; y: number; z: number | null }
  | { type: 'list'; value: ParamJson[] }
  | { type: 'map'; value: [string, ParamJson][] }
  | { type: Exclude<ParamValue['type'], 'null' | 'bytes' | 'point' | 'list' | 'map'>; value: string | number | boolean };

export function paramToJson(param: ParamValue): ParamJson {
  switch (param.type) {
    case 'null':
      return { type: 'null' };
    case 'int':
      return { type: 'int', value: param.value.toString() };
    case 'bytes':
      return { type: 'bytes', hex: Buffer.from(param.value).toString('hex') };
    case 'point':
      return { type: 'point', srid: param.value.srid, x: param.value.x, y: param.value.y, z: param.value.z ?? null };
    case 'list':
      return { type: 'list', value: param.value.map(paramToJson) };
    case 'map':
      return { type: 'map', value: param.value.map(([key, item]) => [key, paramToJson(item)]) };
    default:
      return { type: param.type, value: param.value };
  }
}

const SUMMARY_TEXT_LIMIT = 24;

function clip(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** A short human rendering of a parameter value: `42`, `"Ada"`, `[3 items]`, `date 2026-01-01`. */
export function summarizeParam(param: ParamValue): string {
  switch (param.type) {
    case 'null':
      return 'null';
    case 'bool':
    case 'int':
      return String(param.value);
    case 'float':
      return Number.isInteger(param.value) ? param.value.toFixed(1) : String(param.value);
    case 'string':
      return JSON.stringify(clip(param.value, SUMMARY_TEXT_LIMIT));
    case 'bytes':
      return `<${param.value.length} bytes>`;
    case 'list':
      return `[${param.value.length} items]`;
    case 'map':
      return `{${param.value.map(([key]) => key).join(', ')}}`;
    case 'point': {
      const { srid, x, y, z } = param.value;
      return `point(${srid}: ${x}, ${y}${z === undefined ? '' : `, ${z}`})`;
    }
    default:
      return `${param.type} ${param.value}`;
  }
}

export function summarizeParams(params: readonly (readonly [string, ParamValue])[]): string {
  return params.map(([name, value]) => `${name}=${summarizeParam(value)}`).join(' ');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** `n/s` throughput of `count` things in `ms`. */
export function formatRate(count: number, ms: number): string {
  if (ms <= 0) return '-';
  const perSecond = (count * 1000) / ms;
  return perSecond >= 100 ? Math.round(perSecond).toLocaleString('en-US') : perSecond.toFixed(1);
}

export function hashPrefix(hash: Uint8Array, length = 12): string {
  return Buffer.from(hash).toString('hex').slice(0, length);
}

/** JSON that carries bigints as decimal strings and byte arrays as hex. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_key, item: unknown) => {
      if (typeof item === 'bigint') return item.toString();
      if (item instanceof Uint8Array) return Buffer.from(item).toString('hex');
      // Buffer.toJSON runs before the replacer sees it: turn its { type, data } back into hex.
      if (typeof item === 'object' && item !== null && (item as { type?: unknown }).type === 'Buffer' && Array.isArray((item as { data?: unknown }).data)) {
        return Buffer.from((item as { data: number[] }).data).toString('hex');
      }
      return item;
    },
    indent,
  );
}

/** Renders rows as left-aligned columns (the last column is not padded). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** Labeled values, one per line with aligned values. */
export function formatFields(fields: readonly (readonly [string, string | number])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `  ${`${label}:`.padEnd(width + 1)} ${value}`).join('\n');
}

export interface ProgressBar {
  /** Sets how far along it is (`done` of `total`); redraws at most every 100 ms. */
  update(done: number, total?: number): void;
  /** Erases the bar. */
  done(): void;
}

const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 28;

/** Where a command writes: `out` for results, `err` for progress, notes and errors. */
export class Output {
  readonly interactive: boolean;

  constructor(
    readonly out: Writable = process.stdout,
    readonly err: Writable & { isTTY?: boolean; columns?: number } = process.stderr,
    env: Record<string, string | undefined> = process.env,
  ) {
    this.interactive = err.isTTY === true && env.TERM !== 'dumb';
  }

  print(text = ''): void {
    this.out.write(`${text}\n`);
  }

  note(text: string): void {
    this.err.write(`${text}\n`);
  }

  /** A progress bar on a terminal; a no-op when stderr is piped. */
  progress(label: string, total?: number): ProgressBar {
    if (!this.interactive) return { update: () => undefined, done: () => undefined };
    let last = 0;
    let known = total;
    const draw = (done: number) => {
      const columns = this.err.columns ?? 80;
      let line: string;
      if (known !== undefined && known > 0) {
        const fraction = Math.min(1, done / known);
        const filled = Math.round(fraction * BAR_WIDTH);
        line = `${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${done}/${known}`;
      } else {
        line = `${label} ${done}`;
      }
      this.err.write(`\r${clip(line, columns - 1)}\x1b[K`);
    };
    return {
      update: (done, newTotal) => {
        if (newTotal !== undefined) known = newTotal;
        const now = Date.now();
        if (now - last < REDRAW_INTERVAL_MS && !(known !== undefined && done >= known)) return;
        last = now;
        draw(done);
      },
      done: () => this.err.write('\r\x1b[K'),
    };
  }
}
