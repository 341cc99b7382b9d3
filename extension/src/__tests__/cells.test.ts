import {
  collectFlameCells,
  isFlameCell,
  pythonString,
  resultCellSource,
  withSubmission,
  type NotebookJSON
} from '../cells';
import type { Provenance } from '../types';

function notebook(...cells: Array<[string, string | string[]]>): NotebookJSON {
  return { cells: cells.map(([cell_type, source]) => ({ cell_type, source, metadata: {} })), metadata: {} };
}

const provenance: Provenance = {
  analysisId: 'a-1',
  hubUrl: 'http://hub/analyses/a-1',
  bundleHash: 'sha256:ff',
  submittedAt: '2026-11-28T01:00:00Z',
  nodes: ['charite', 'aggregator']
};

describe('collectFlameCells', () => {
  it('collects code cells whose first line is %%flame, in order, with their positions', () => {
    const nb = notebook(
      ['markdown', '# Title'],
      ['code', '%%flame analyzer\nx = 1'],
      ['code', 'import pandas'],
      ['code', ['%%flame aggregator\n', 'y = 2']]
    );
    expect(collectFlameCells(nb)).toEqual([
      { index: 1, source: '%%flame analyzer\nx = 1' },
      { index: 3, source: '%%flame aggregator\ny = 2' }
    ]);
  });

  it('accepts a bare %%flame line and %%flame alone in the cell', () => {
    expect(isFlameCell({ cell_type: 'code', source: '%%flame\nx = 1' })).toBe(true);
    expect(isFlameCell({ cell_type: 'code', source: '%%flame' })).toBe(true);
    expect(isFlameCell({ cell_type: 'code', source: '%%flame\tanalyzer' })).toBe(true);
  });

  it('ignores markdown and raw cells that start with %%flame', () => {
    expect(isFlameCell({ cell_type: 'markdown', source: '%%flame' })).toBe(false);
    expect(isFlameCell({ cell_type: 'raw', source: '%%flame' })).toBe(false);
  });

  it('ignores other magics whose name merely begins with flame', () => {
    expect(isFlameCell({ cell_type: 'code', source: '%%flamegraph\nrun()' })).toBe(false);
  });

  it('ignores %%flame that is not on the first line or not at its start', () => {
    expect(isFlameCell({ cell_type: 'code', source: '# note\n%%flame' })).toBe(false);
    expect(isFlameCell({ cell_type: 'code', source: ' %%flame' })).toBe(false);
    expect(isFlameCell({ cell_type: 'code', source: '%flame x' })).toBe(false);
  });

  it('finds nothing in a notebook without %%flame cells or without cells', () => {
    expect(collectFlameCells(notebook(['code', 'print(1)']))).toEqual([]);
    expect(collectFlameCells({ cells: [] })).toEqual([]);
  });
});

describe('withSubmission', () => {
  it('starts the submissions list on a notebook without flame_lab metadata', () => {
    expect(withSubmission(undefined, provenance)).toEqual({ submissions: [provenance] });
  });

  it('appends to earlier submissions and keeps other keys', () => {
    const earlier = { ...provenance, analysisId: 'a-0' };
    const before = { submissions: [earlier], profile: 'hub' };
    const after = withSubmission(before, provenance);
    expect(after).toEqual({ submissions: [earlier, provenance], profile: 'hub' });
  });

  it('does not change the metadata object it was given', () => {
    const before = { submissions: [] as Provenance[] };
    withSubmission(before, provenance);
    expect(before.submissions).toEqual([]);
  });

  it('keeps only the provenance fields the contract names', () => {
    const noisy = { ...provenance, passphrase: 'secret' } as unknown as Provenance;
    const record = withSubmission({}, noisy).submissions[0];
    expect(Object.keys(record).sort()).toEqual(
      ['analysisId', 'bundleHash', 'hubUrl', 'nodes', 'submittedAt'].sort()
    );
  });

  it('replaces a malformed submissions value with a fresh list', () => {
    expect(withSubmission({ submissions: 'oops' }, provenance).submissions).toEqual([provenance]);
  });
});

describe('resultCellSource', () => {
  it('is the two lines that attach to the analysis and fetch its result', () => {
    expect(resultCellSource('3f2a-9')).toBe('import flame_lab as fl\nfl.attach("3f2a-9").result()');
  });

  it('quotes ids so that no character can break out of the Python string', () => {
    expect(pythonString('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"');
  });
});
