/** Finding `%%flame` cells in notebook JSON and writing provenance back: pure functions, no Lab imports. */

import type { Provenance } from './types';

export interface NotebookCellJSON {
  cell_type: string;
  source: string | string[];
  [key: string]: unknown;
}

export interface NotebookJSON {
  cells: NotebookCellJSON[];
  metadata?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface FlameCell {
  /** Position of the cell in the notebook, counting from 0. */
  index: number;
  source: string;
}

const FLAME_MAGIC = /^%%flame(?=\s|$)/;

/** A cell's source as one string (nbformat allows a list of lines). */
export function cellSource(cell: NotebookCellJSON): string {
  return Array.isArray(cell.source) ? cell.source.join('') : (cell.source ?? '');
}

/** True for a code cell whose first line is the `%%flame` cell magic (with or without arguments). */
export function isFlameCell(cell: NotebookCellJSON): boolean {
  return cell.cell_type === 'code' && FLAME_MAGIC.test(cellSource(cell));
}

/** The notebook's `%%flame` cells in order; the server rebuilds the draft from the same rule. */
export function collectFlameCells(notebook: NotebookJSON): FlameCell[] {
  const found: FlameCell[] = [];
  (notebook.cells ?? []).forEach((cell, index) => {
    if (isFlameCell(cell)) {
      found.push({ index, source: cellSource(cell) });
    }
  });
  return found;
}

/** The files the cells make and how many cells an earlier one of the same file overrides. */
export function draftSummary(cells: FlameCell[]): string {
  const files = new Map<string, number>();
  for (const cell of cells) {
    const header = cell.source.split('\n', 1)[0];
    const match = /^%%flame\s+file\s+(\S+)/.exec(header);
    const path = match ? match[1] : 'analysis.py';
    files.set(path, (files.get(path) ?? 0) + 1);
  }
  const names = [...files.keys()].sort();
  let text = `${names.length} file${names.length === 1 ? '' : 's'} (${names.join(', ')}) from ${cells.length} %%flame cell${cells.length === 1 ? '' : 's'} will be signed and sent as one analysis.`;
  for (const [path, count] of files) {
    if (count > 1) {
      text += ` ${count} cells define ${path}: only the last of them counts.`;
    }
  }
  return text;
}

/** Metadata with `flame_lab.submissions` extended by one record; other keys are kept as they were. */
export function withSubmission(
  flameLab: unknown,
  provenance: Provenance
): { submissions: Provenance[]; [key: string]: unknown } {
  const base =
    flameLab && typeof flameLab === 'object' && !Array.isArray(flameLab)
      ? (flameLab as Record<string, unknown>)
      : {};
  const previous = Array.isArray(base.submissions) ? (base.submissions as Provenance[]) : [];
  const record: Provenance = {
    analysisId: provenance.analysisId,
    hubUrl: provenance.hubUrl,
    bundleHash: provenance.bundleHash,
    submittedAt: provenance.submittedAt,
    nodes: [...provenance.nodes]
  };
  return { ...base, submissions: [...previous, record] };
}

/** The code cell "Open result in notebook" inserts; the id is quoted as a Python string literal. */
export function resultCellSource(analysisId: string): string {
  return `import flame_lab as fl\nfl.attach(${pythonString(analysisId)}).result()`;
}

/** A double-quoted Python literal for any text (JSON escapes are valid Python escapes). */
export function pythonString(text: string): string {
  return JSON.stringify(text);
}
