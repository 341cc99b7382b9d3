/** The "Submit to FLAME" flow as plain steps, so jest checks it; the Lab dialogs plug in through SubmitUi. */

import { ApiError, type FlameApi } from './api';
import { collectFlameCells, draftSummary, type NotebookJSON } from './cells';
import type { NodeInfo, Provenance, SubmitResponse } from './types';

export interface SubmitChoices {
  name: string;
  nodes: string[];
}

/** What the flow needs from the user interface; each dialog may answer null for "cancelled". */
export interface SubmitUi {
  chooseOptions(request: {
    nodes: NodeInfo[];
    preselected: string[];
    name: string;
    cellCount: number;
    /** What will be sent, in words (files, and cells that override earlier ones). */
    summary?: string;
  }): Promise<SubmitChoices | null>;
  /** Asks for the key passphrase; `retry` is true when a previous one did not unlock the key. */
  askPassphrase(message: string, hint: string, retry: boolean): Promise<string | null>;
  showError(title: string, message: string, hint: string): Promise<void>;
  recordProvenance(provenance: Provenance): Promise<void>;
  reveal(response: SubmitResponse): Promise<void>;
}

export type SubmitOutcome =
  | { kind: 'no-cells' }
  | { kind: 'cancelled' }
  | { kind: 'failed'; error: ApiError }
  | { kind: 'submitted'; response: SubmitResponse };

export const NO_CELLS_TITLE = 'Nothing to submit to FLAME';
export const NO_CELLS_MESSAGE = 'This notebook has no %%flame cells, so there is no analysis to send.';
export const NO_CELLS_HINT =
  'Start a code cell with the line %%flame (for example %%flame analyzer), put your analysis ' +
  'code below it, try it locally, then press Submit to FLAME again.';

const PASSPHRASE_REQUIRED = 'PassphraseRequired';
const MAX_PASSPHRASE_TRIES = 3;

/** Nodes ticked at first: the settings' defaults that exist, else every node of the federation. */
export function preselectNodes(nodes: NodeInfo[], defaults: string[]): string[] {
  const names = new Set(nodes.map(n => n.name));
  const chosen = defaults.filter(name => names.has(name));
  return chosen.length > 0 ? chosen : nodes.map(n => n.name);
}

/** A slug-like analysis name from the notebook's file name ("01 Getting started.ipynb" -> "01-getting-started"). */
export function suggestName(path: string): string {
  const file = path.split('/').pop() ?? '';
  const stem = file.replace(/\.ipynb$/i, '');
  const slug = stem
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return slug || 'analysis';
}

/** Collects cells, asks for nodes and name, submits (asking for the passphrase if the key is locked), records provenance. */
export async function submitNotebook(
  api: FlameApi,
  ui: SubmitUi,
  notebook: NotebookJSON,
  options: { path: string; defaultNodes: string[] }
): Promise<SubmitOutcome> {
  const cells = collectFlameCells(notebook);
  if (cells.length === 0) {
    await ui.showError(NO_CELLS_TITLE, NO_CELLS_MESSAGE, NO_CELLS_HINT);
    return { kind: 'no-cells' };
  }
  let nodes: NodeInfo[];
  try {
    nodes = await api.nodes();
  } catch (error) {
    return fail(ui, error);
  }
  const choices = await ui.chooseOptions({
    nodes,
    preselected: preselectNodes(nodes, options.defaultNodes),
    name: suggestName(options.path),
    cellCount: cells.length,
    summary: draftSummary(cells)
  });
  if (choices === null) {
    return { kind: 'cancelled' };
  }
  const body = { notebook, nodes: choices.nodes, name: choices.name || undefined };
  let passphrase: string | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await api.submit(passphrase === undefined ? body : { ...body, passphrase });
      await ui.recordProvenance(response.provenance);
      await ui.reveal(response);
      return { kind: 'submitted', response };
    } catch (error) {
      const locked = error instanceof ApiError && error.errorClass === PASSPHRASE_REQUIRED;
      if (!locked || attempt >= MAX_PASSPHRASE_TRIES) {
        return fail(ui, error);
      }
      const answer = await ui.askPassphrase(error.message, error.hint, attempt > 0);
      if (answer === null) {
        return { kind: 'cancelled' };
      }
      passphrase = answer;
    }
  }
}

async function fail(ui: SubmitUi, error: unknown): Promise<SubmitOutcome> {
  const apiError =
    error instanceof ApiError
      ? error
      : new ApiError(
          'server',
          `Submitting failed unexpectedly: ${String(error)}`,
          'Reload the page and try again; if it persists, report it with the browser console log.'
        );
  await ui.showError('Submit to FLAME failed', apiError.message, apiError.hint);
  return { kind: 'failed', error: apiError };
}
