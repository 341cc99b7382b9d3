import type { NotebookJSON } from '../cells';
import {
  NO_CELLS_HINT,
  preselectNodes,
  submitNotebook,
  suggestName,
  type SubmitChoices,
  type SubmitUi
} from '../submission';
import type { Provenance, SubmitResponse } from '../types';
import { FakeServer, NODES, json, summary } from './fakeServer';

const FLAME_NOTEBOOK: NotebookJSON = {
  cells: [
    { cell_type: 'markdown', source: '# Study' },
    { cell_type: 'code', source: '%%flame analyzer\nresult = 1' }
  ],
  metadata: {}
};

const PLAIN_NOTEBOOK: NotebookJSON = { cells: [{ cell_type: 'code', source: 'print(1)' }], metadata: {} };

const RESPONSE: SubmitResponse = {
  analysis: summary('new', { status: 'pending' }),
  provenance: {
    analysisId: 'new',
    hubUrl: 'http://hub/analyses/new',
    bundleHash: 'sha256:aa',
    submittedAt: '2026-11-28T01:00:00Z',
    nodes: ['charite', 'aggregator']
  }
};

/** A recording SubmitUi whose answers the test sets. */
class FakeUi implements SubmitUi {
  choices: SubmitChoices | null = { name: 'study', nodes: ['charite', 'aggregator'] };
  passphrases: Array<string | null> = [];
  errors: Array<{ title: string; message: string; hint: string }> = [];
  optionRequests: Parameters<SubmitUi['chooseOptions']>[0][] = [];
  passphraseRetries: boolean[] = [];
  recorded: Provenance[] = [];
  revealed: SubmitResponse[] = [];

  async chooseOptions(request: Parameters<SubmitUi['chooseOptions']>[0]) {
    this.optionRequests.push(request);
    return this.choices;
  }
  async askPassphrase(_message: string, _hint: string, retry: boolean) {
    this.passphraseRetries.push(retry);
    return this.passphrases.shift() ?? null;
  }
  async showError(title: string, message: string, hint: string) {
    this.errors.push({ title, message, hint });
  }
  async recordProvenance(provenance: Provenance) {
    this.recorded.push(provenance);
  }
  async reveal(response: SubmitResponse) {
    this.revealed.push(response);
  }
}

const OPTIONS = { path: 'notebooks/01 Getting started.ipynb', defaultNodes: [] as string[] };

describe('submitNotebook', () => {
  it('explains and sends nothing when the notebook has no %%flame cells', async () => {
    const server = new FakeServer();
    const ui = new FakeUi();
    const outcome = await submitNotebook(server.api(), ui, PLAIN_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('no-cells');
    expect(server.calls).toEqual([]);
    expect(ui.errors).toHaveLength(1);
    expect(ui.errors[0].hint).toBe(NO_CELLS_HINT);
    expect(ui.errors[0].hint).toMatch(/%%flame/);
  });

  it('posts the notebook with the chosen nodes and name, records provenance and reveals it', async () => {
    const server = new FakeServer().on('POST analyses', () => json(RESPONSE, 201));
    const ui = new FakeUi();
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('submitted');
    const [post] = server.callsTo('POST analyses');
    expect(post.body).toEqual({ notebook: FLAME_NOTEBOOK, nodes: ['charite', 'aggregator'], name: 'study' });
    expect(ui.recorded).toEqual([RESPONSE.provenance]);
    expect(ui.revealed).toEqual([RESPONSE]);
  });

  it('offers every node of the federation, ticks the defaults and suggests a name', async () => {
    const server = new FakeServer().on('POST analyses', () => json(RESPONSE, 201));
    const ui = new FakeUi();
    await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, { ...OPTIONS, defaultNodes: ['tum', 'gone'] });
    expect(ui.optionRequests[0]).toEqual({
      nodes: NODES,
      preselected: ['tum'],
      name: '01-getting-started',
      cellCount: 1,
      summary: '1 file (analysis.py) from 1 %%flame cell will be signed and sent as one analysis.'
    });
  });

  it('sends nothing when the node dialog is cancelled', async () => {
    const server = new FakeServer();
    const ui = new FakeUi();
    ui.choices = null;
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('cancelled');
    expect(server.callsTo('POST analyses')).toEqual([]);
  });

  it('asks for the passphrase when the server needs it and retries with it', async () => {
    const bodies: unknown[] = [];
    const server = new FakeServer().on('POST analyses', call => {
      bodies.push(call.body);
      const body = call.body as { passphrase?: string };
      return body.passphrase === 'right'
        ? json(RESPONSE, 201)
        : json({ error: 'PassphraseRequired', message: 'Key locked.', hint: 'Enter it.' }, 409);
    });
    const ui = new FakeUi();
    ui.passphrases = ['wrong', 'right'];
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('submitted');
    expect(bodies.map(b => (b as { passphrase?: string }).passphrase)).toEqual([undefined, 'wrong', 'right']);
    expect(ui.passphraseRetries).toEqual([false, true]);
    expect(JSON.stringify(ui.recorded)).not.toContain('right');
  });

  it('stops without resubmitting when the passphrase dialog is cancelled', async () => {
    const server = new FakeServer().on('POST analyses', () =>
      json({ error: 'PassphraseRequired', message: 'Key locked.', hint: 'Enter it.' }, 409)
    );
    const ui = new FakeUi();
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('cancelled');
    expect(server.callsTo('POST analyses')).toHaveLength(1);
  });

  it('gives up after a few wrong passphrases and says why', async () => {
    const server = new FakeServer().on('POST analyses', () =>
      json({ error: 'PassphraseRequired', message: 'Key locked.', hint: 'Enter it.' }, 409)
    );
    const ui = new FakeUi();
    ui.passphrases = ['a', 'b', 'c', 'd', 'e'];
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('failed');
    expect(server.callsTo('POST analyses')).toHaveLength(4);
    expect(ui.errors[0].message).toBe('Key locked.');
  });

  it('shows the server message and hint of a draft error and records nothing', async () => {
    const server = new FakeServer().on('POST analyses', () =>
      json({ error: 'DraftError', message: 'The analyzer cell imports os.', hint: 'Remove it.' }, 400)
    );
    const ui = new FakeUi();
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('failed');
    expect(ui.errors).toEqual([
      { title: 'Submit to FLAME failed', message: 'The analyzer cell imports os.', hint: 'Remove it.' }
    ]);
    expect(ui.recorded).toEqual([]);
  });

  it('reports a missing server before showing the node dialog', async () => {
    const server = new FakeServer();
    server.routes.clear();
    const ui = new FakeUi();
    const outcome = await submitNotebook(server.api(), ui, FLAME_NOTEBOOK, OPTIONS);
    expect(outcome.kind).toBe('failed');
    expect(ui.optionRequests).toEqual([]);
    expect(ui.errors[0].hint).toMatch(/pip install flame-lab/);
  });
});

describe('preselectNodes and suggestName', () => {
  it('ticks every node when no default matches', () => {
    expect(preselectNodes(NODES, [])).toEqual(['charite', 'tum', 'aggregator']);
    expect(preselectNodes(NODES, ['elsewhere'])).toEqual(['charite', 'tum', 'aggregator']);
  });

  it('turns a notebook path into a slug and never an empty name', () => {
    expect(suggestName('a/b/My Study (v2).ipynb')).toBe('my-study-v2');
    expect(suggestName('___.ipynb')).toBe('analysis');
  });
});
