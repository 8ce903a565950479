/** Tables on stdout and the same figures as JSON. */
import type { Summary } from './stats.js';

export type Cell = string | number | Summary | null | undefined;

export interface Table {
  group: string;
  title: string;
  columns: string[];
  rows: Cell[][];
  notes: string[];
}

export interface TargetLine {
  id: number;
  target: string;
  measured: string;
  required: string;
  met: boolean | null;
  value: number | null;
}

function isSummary(cell: Cell): cell is Summary {
  return typeof cell === 'object' && cell !== null && 'median' in cell;
}

export function fmtNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e8 ? 0 : 2)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(abs >= 1e6 ? 0 : 1)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

export function fmtCell(cell: Cell): string {
  if (cell === null || cell === undefined) return '-';
  if (typeof cell === 'number') return fmtNumber(cell);
  if (typeof cell === 'string') return cell;
  return `${fmtNumber(cell.median)} ±${cell.spreadPct.toFixed(cell.spreadPct < 10 ? 1 : 0)}%`;
}

export function renderTable(table: Table): string {
  const header = table.columns;
  const body = table.rows.map((row) => row.map(fmtCell));
  const widths = header.map((column, i) => Math.max(column.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const out = [`### ${table.title}`, '', line(header), `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`];
  for (const row of body) out.push(line(header.map((_, i) => row[i] ?? '')));
  for (const note of table.notes) out.push('', `_${note}_`);
  return out.join('\n');
}

export function toJsonCell(cell: Cell): unknown {
  if (isSummary(cell)) return { median: cell.median, min: cell.min, max: cell.max, spreadPct: cell.spreadPct, samples: cell.samples };
  return cell ?? null;
}

export function renderTargets(targets: TargetLine[]): string {
  const table: Table = {
    group: 'targets',
    title: 'Targets (issue 6)',
    columns: ['#', 'target', 'measured', 'required', 'met'],
    rows: targets.map((t) => [String(t.id), t.target, t.measured, t.required, t.met === null ? 'n/a' : t.met ? 'MET' : 'MISSED']),
    notes: [],
  };
  return renderTable(table);
}
