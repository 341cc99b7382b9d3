import { FlameModel, WAITING_LINES, visibleText, waitingLines } from '../model';
import { FakeServer, ManualScheduler, detail, json, summary } from './fakeServer';

describe('what an analysis waits for', () => {
  it('shows the server\'s reasons one per line, as it words them', () => {
    const lines = waitingLines({
      waiting: [
        'waiting for uk-aachen to approve (a node with manual approval waits for its admin)',
        'uk-koeln approved but is offline: it cannot start'
      ]
    });
    expect(lines).toEqual([
      'waiting for uk-aachen to approve (a node with manual approval waits for its admin)',
      'uk-koeln approved but is offline: it cannot start'
    ]);
  });

  it('makes hostile text visible instead of letting it act', () => {
    // bidi override, terminal escape, newline (a fake second line), NUL
    const [line] = waitingLines({ waiting: ['waiting for \u202eevil\u001b[2J\nnext\u0000 to start'] });
    expect(line).toBe('waiting for \\u202eevil\\x1b[2J next\\x00 to start');
    expect(visibleText('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>'); // drawn as text
    expect(visibleText('\u200b\ufeffa\u2066b')).toBe('\\u200b\\ufeffa\\u2066b');
  });

  it('takes whatever a newer or odd server sends without breaking', () => {
    expect(waitingLines({})).toEqual([]);
    expect(waitingLines({ waiting: undefined })).toEqual([]);
    expect(waitingLines({ waiting: 'waiting for x' as unknown as string[] })).toEqual([]);
    const odd = ['a', 'a', '  ', 7, null, { node: 'x' }, 'b'] as unknown as string[];
    expect(waitingLines({ waiting: odd })).toEqual(['a', 'b']);
    // a final reason (say, "failed: node X silent for 30 min") is shown like any other
    expect(waitingLines({ waiting: ['failed: uk-koeln silent for 30 min'] })).toEqual([
      'failed: uk-koeln silent for 30 min'
    ]);
  });

  it('bounds the lines and their length', () => {
    const many = Array.from({ length: 20 }, (_, i) => `waiting for node-${i} to start`);
    const lines = waitingLines({ waiting: many });
    expect(lines).toHaveLength(WAITING_LINES);
    expect(lines[WAITING_LINES - 1]).toBe(`and ${20 - WAITING_LINES + 1} more`);
    const [long] = waitingLines({ waiting: ['x'.repeat(5000)] });
    expect(long.length).toBeLessThanOrEqual(300);
    expect(long.endsWith('…')).toBe(true);
  });

  it('reaches the panel through the list and the selected analysis', async () => {
    const server = new FakeServer();
    const why = 'waiting for charite to approve';
    server.on('GET analyses', () => json({ analyses: [summary('a1', { status: 'pending', waiting: [why] })] }));
    server.on('GET analyses/a1', () => json({ ...detail('a1'), status: 'pending', waiting: [why] }));
    const model = new FlameModel(server.api(), { scheduler: new ManualScheduler() });
    await model.refresh();
    expect(waitingLines(model.analyses[0])).toEqual([why]);
    await model.select('a1');
    expect(model.selected && waitingLines(model.selected)).toEqual([why]);
  });
});
