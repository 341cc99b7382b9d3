import { draftSummary } from '../cells';
import { FlameModel, PAGE_SIZE, filterAnalyses, groupKey, relativeTime } from '../model';
import { FakeServer, ManualScheduler, json, status, summary } from './fakeServer';

function setup() {
  const server = new FakeServer();
  const model = new FlameModel(server.api(), { scheduler: new ManualScheduler() });
  return { server, model };
}

describe('what the panel shows', () => {
  it('says times relative to now and keeps unreadable ones', () => {
    const now = new Date('2026-11-28T12:00:00Z');
    expect(relativeTime('2026-11-28T11:59:30Z', now)).toBe('30 s ago');
    expect(relativeTime('2026-11-28T11:55:00Z', now)).toBe('5 min ago');
    expect(relativeTime('2026-11-28T09:00:00Z', now)).toBe('3 h ago');
    expect(relativeTime('2026-11-25T12:00:00Z', now)).toBe('3 d ago');
    expect(relativeTime('yesterday', now)).toBe('yesterday');
  });

  it('groups the key id by four, as the CLI does', () => {
    expect(groupKey('0123456789abcdef01')).toBe('0123 4567 89ab cdef 01');
  });

  it('filters analyses by name or id and pages them', async () => {
    const many = Array.from({ length: 45 }, (_, i) => summary(`id${i}`, { name: i % 2 ? 'mean age' : 'cohort' }));
    expect(filterAnalyses(many, 'MEAN')).toHaveLength(22);
    expect(filterAnalyses(many, 'id44')).toHaveLength(1);
    const { server, model } = setup();
    server.on('GET analyses', () => json({ analyses: many }));
    await model.refresh();
    expect(model.shown).toBe(PAGE_SIZE);
    model.showMore();
    expect(model.shown).toBe(2 * PAGE_SIZE);
    model.setFilter('cohort');
    expect(model.filteredAnalyses).toHaveLength(23);
    expect(model.shown).toBe(PAGE_SIZE);
  });

  it('reads the data dictionary once connected', async () => {
    const { server, model } = setup();
    await model.refresh();
    expect(model.datasets?.nodes[0].tables[0].columns[0].unit).toBe('a');
    expect(model.datasets?.missing).toEqual(['tum']);
    await model.refresh();
    expect(server.callsTo('GET datasets')).toHaveLength(1);
    await model.loadDatasets();
    expect(server.callsTo('GET datasets')).toHaveLength(2);
  });

  it('marks every node offline and forgets the dictionary when the federation stops', async () => {
    const { server, model } = setup();
    await model.refresh();
    expect(model.nodes.some(n => n.online)).toBe(true);
    server.on('GET status', () => json({ ...status(), reachable: false }));
    await model.refresh();
    expect(model.nodes.every(n => !n.online)).toBe(true);
    expect(model.datasets).toBeNull();
  });

  it('says which file several %%flame cells define, and that the last one counts', () => {
    const text = draftSummary([
      { index: 0, source: '%%flame\nx = 1' },
      { index: 1, source: '%%flame file helpers.py\ny = 2' },
      { index: 2, source: '%%flame\nx = 3' }
    ]);
    expect(text).toContain('2 files (analysis.py, helpers.py) from 3 %%flame cells');
    expect(text).toContain('2 cells define analysis.py: only the last of them counts.');
  });
});
