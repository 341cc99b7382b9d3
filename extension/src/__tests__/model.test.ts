import { FlameModel, filterLogs, levelRank } from '../model';
import type { LogEntry } from '../types';
import { FakeServer, ManualScheduler, json, status, summary } from './fakeServer';

function setup(options: { interval?: number; maxDelay?: number; profile?: string } = {}) {
  const server = new FakeServer();
  const scheduler = new ManualScheduler();
  const model = new FlameModel(server.api(options.profile), {
    interval: options.interval ?? 2000,
    maxDelay: options.maxDelay ?? 30000,
    scheduler
  });
  return { server, scheduler, model };
}

/** Fires the pending timer and waits for the refresh it started. */
async function tick(scheduler: ManualScheduler, model: FlameModel): Promise<void> {
  scheduler.fire();
  await model.refresh();
}

describe('FlameModel refresh', () => {
  it('checks the version once, then loads status, nodes and analyses', async () => {
    const { server, scheduler, model } = setup();
    model.setVisible(true);
    await model.refresh();
    expect(model.connection).toBe('connected');
    expect(model.status?.federation.name).toBe('sandbox');
    expect(model.nodes.map(n => n.name)).toEqual(['charite', 'tum', 'aggregator']);
    expect(model.analyses.map(a => a.id)).toEqual(['a1', 'a2', 'a3']);
    expect(model.problem).toBeNull();
    expect(model.versionWarning).toBeNull();
    await tick(scheduler, model);
    expect(server.callsTo('GET version')).toHaveLength(1);
    expect(server.callsTo('GET status')).toHaveLength(2);
  });

  it('polls at the configured interval while visible', async () => {
    const { scheduler, model } = setup({ interval: 5000 });
    model.setVisible(true);
    await model.refresh();
    expect(scheduler.delays).toEqual([5000]);
    model.setInterval(1000);
    expect(scheduler.delays).toEqual([1000]);
  });

  it('joins a refresh already running instead of sending a second set of requests', async () => {
    const { server, model } = setup();
    await Promise.all([model.refresh(), model.refresh()]);
    expect(server.callsTo('GET status')).toHaveLength(1);
  });

  it('notifies subscribers after a refresh and stops after unsubscribing', async () => {
    const { model } = setup();
    const seen: string[] = [];
    const unsubscribe = model.subscribe(() => seen.push(model.connection));
    await model.refresh();
    expect(seen).toContain('connected');
    unsubscribe();
    const count = seen.length;
    await model.refresh();
    expect(seen).toHaveLength(count);
  });

  it('sends the settings profile as a query parameter on every request', async () => {
    const { server, model } = setup({ profile: 'hub-test' });
    await model.refresh();
    expect(server.calls.length).toBeGreaterThan(0);
    for (const call of server.calls) {
      expect(call.query.get('profile')).toBe('hub-test');
    }
  });

  it('sends no profile parameter when the setting is empty', async () => {
    const { server, model } = setup();
    await model.refresh();
    for (const call of server.calls) {
      expect(call.query.has('profile')).toBe(false);
    }
  });
});

describe('FlameModel visibility', () => {
  it('does not poll while hidden', async () => {
    const { server, scheduler, model } = setup();
    await model.refresh();
    expect(scheduler.pending.size).toBe(0);
    expect(server.callsTo('GET status')).toHaveLength(1);
  });

  it('pauses when hidden and refreshes at once when shown again', async () => {
    const { server, scheduler, model } = setup();
    model.setVisible(true);
    await model.refresh();
    expect(scheduler.pending.size).toBe(1);
    model.setVisible(false);
    expect(scheduler.pending.size).toBe(0);
    expect(model.isPolling).toBe(false);
    model.setVisible(true);
    await model.refresh();
    expect(server.callsTo('GET status')).toHaveLength(2);
    expect(scheduler.pending.size).toBe(1);
  });

  it('stops for good when disposed', async () => {
    const { scheduler, model } = setup();
    model.setVisible(true);
    await model.refresh();
    model.dispose();
    expect(scheduler.pending.size).toBe(0);
    model.setVisible(true);
    expect(scheduler.pending.size).toBe(0);
  });
});

describe('FlameModel failures and backoff', () => {
  it('reports a missing server extension with a hint when the API answers 404', async () => {
    const { server, model } = setup();
    server.routes.clear();
    await model.refresh();
    expect(model.connection).toBe('missing');
    expect(model.problem?.message).toMatch(/server extension/);
    expect(model.problem?.hint).toMatch(/pip install flame-lab/);
  });

  it('reports an unreachable Jupyter server and doubles the wait per failure up to the cap', async () => {
    const { server, scheduler, model } = setup({ interval: 2000, maxDelay: 10000 });
    server.down = true;
    model.setVisible(true);
    await model.refresh();
    expect(model.connection).toBe('unreachable');
    expect(model.problem?.hint).toBeTruthy();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      delays.push(scheduler.delays[0]);
      await tick(scheduler, model);
    }
    expect(delays).toEqual([4000, 8000, 10000, 10000]);
  });

  it('goes back to the normal interval and re-checks the version after recovering', async () => {
    const { server, scheduler, model } = setup({ interval: 2000 });
    model.setVisible(true);
    await model.refresh();
    server.down = true;
    await tick(scheduler, model);
    expect(model.connection).toBe('unreachable');
    server.down = false;
    server.on('GET version', () => json({ version: '0.1.0', api: 2 }));
    await tick(scheduler, model);
    expect(model.connection).toBe('connected');
    expect(model.problem).toBeNull();
    expect(model.failures).toBe(0);
    expect(scheduler.delays).toEqual([2000]);
    expect(model.versionWarning).toMatch(/API 2/);
  });

  it('shows the federation error from status and backs off without asking for nodes', async () => {
    const { server, scheduler, model } = setup();
    server.on('GET status', () =>
      json(status({ reachable: false, error: { message: 'Hub down', hint: 'Start the sandbox' } }))
    );
    model.setVisible(true);
    await model.refresh();
    expect(model.connection).toBe('connected');
    expect(model.problem).toEqual({ message: 'Hub down', hint: 'Start the sandbox' });
    expect(server.callsTo('GET nodes')).toHaveLength(0);
    expect(scheduler.delays).toEqual([4000]);
  });

  it('keeps the connection but shows a flame_lab error body with its hint', async () => {
    const { server, model } = setup();
    server.on('GET analyses', () =>
      json({ error: 'HubError', message: 'The hub answered 500.', hint: 'Retry later.' }, 502)
    );
    await model.refresh();
    expect(model.connection).toBe('connected');
    expect(model.problem).toEqual({ message: 'The hub answered 500.', hint: 'Retry later.' });
  });
});

describe('FlameModel version handshake', () => {
  it('warns visibly when the server speaks another API number', async () => {
    const { server, model } = setup();
    server.on('GET version', () => json({ version: '0.1.0', api: 2 }));
    await model.refresh();
    expect(model.versionWarning).toMatch(/API 2.*API 1/);
  });

  it('warns when the server version differs from the extension version', async () => {
    const { server, model } = setup();
    server.on('GET version', () => json({ version: '0.2.0', api: 1 }));
    await model.refresh();
    expect(model.versionWarning).toMatch(/0\.2\.0.*0\.1\.0/);
  });
});

describe('FlameModel selection', () => {
  it('loads the detail and logs of the selected analysis', async () => {
    const { server, model } = setup();
    await model.refresh();
    server.logs = [{ time: '2026-11-28T00:00:01Z', nodeName: 'charite', level: 'info', message: 'hello' }];
    await model.select('a2');
    expect(model.detail?.id).toBe('a2');
    expect(model.logs).toHaveLength(1);
    expect(model.selected?.id).toBe('a2');
  });

  it('moves with arrow keys and clamps at both ends', async () => {
    const { model } = setup();
    await model.refresh();
    await model.selectRelative(1);
    expect(model.selectedId).toBe('a1');
    await model.selectRelative(1);
    await model.selectRelative(1);
    await model.selectRelative(1);
    expect(model.selectedId).toBe('a3');
    await model.selectRelative(-1);
    expect(model.selectedId).toBe('a2');
    await model.selectEdge('first');
    expect(model.selectedId).toBe('a1');
    await model.selectRelative(-1);
    expect(model.selectedId).toBe('a1');
    await model.selectEdge('last');
    expect(model.selectedId).toBe('a3');
  });

  it('starts at the last row when moving up with nothing selected', async () => {
    const { model } = setup();
    await model.refresh();
    await model.selectRelative(-1);
    expect(model.selectedId).toBe('a3');
  });

  it('refreshes the selected analysis on every poll', async () => {
    const { server, scheduler, model } = setup();
    model.setVisible(true);
    await model.refresh();
    await model.select('a1');
    await tick(scheduler, model);
    expect(server.callsTo('GET analyses/a1')).toHaveLength(2);
  });

  it('reveals a new analysis at the top of the list and selects it', async () => {
    const { model } = setup();
    await model.refresh();
    await model.reveal(summary('new'));
    expect(model.analyses[0].id).toBe('new');
    expect(model.selectedId).toBe('new');
    expect(model.detail?.id).toBe('new');
  });

  it('replaces an analysis row with the answer of cancel', async () => {
    const { server, model } = setup();
    server.on('POST analyses/a1/cancel', () => json({ analysis: summary('a1', { status: 'cancelled' }) }, 202));
    await model.refresh();
    await model.cancel('a1');
    expect(model.analyses.find(a => a.id === 'a1')?.status).toBe('cancelled');
  });

  it('clears detail, logs and node filter when the selection changes', async () => {
    const { model } = setup();
    await model.refresh();
    await model.select('a1');
    model.setLogNode('charite');
    await model.select(null);
    expect(model.detail).toBeNull();
    expect(model.logs).toEqual([]);
    expect(model.logNode).toBeNull();
  });
});

describe('log filter', () => {
  const logs: LogEntry[] = [
    { time: '2026-11-28T00:00:03Z', nodeName: 'tum', level: 'debug', message: 'd' },
    { time: '2026-11-28T00:00:01Z', nodeName: 'charite', level: 'error', message: 'e' },
    { time: '2026-11-28T00:00:02Z', nodeName: 'tum', level: 'info', message: 'i' },
    { time: '2026-11-28T00:00:00Z', nodeName: 'charite', level: 'warn', message: 'w' }
  ];

  it('keeps the chosen level and everything more severe, oldest first', () => {
    expect(filterLogs(logs, 'info', null).map(l => l.message)).toEqual(['w', 'e', 'i']);
    expect(filterLogs(logs, 'error', null).map(l => l.message)).toEqual(['e']);
    expect(filterLogs(logs, 'debug', null)).toHaveLength(4);
  });

  it('keeps one node when a node is chosen', () => {
    expect(filterLogs(logs, 'debug', 'tum').map(l => l.message)).toEqual(['i', 'd']);
  });

  it('ranks unknown levels as least severe', () => {
    expect(levelRank('emerg')).toBe(0);
    expect(levelRank('nonsense')).toBeGreaterThan(levelRank('debug'));
  });

  it('applies the model filter to the selected logs', async () => {
    const { server, model } = setup();
    server.logs = logs;
    await model.refresh();
    await model.select('a1');
    model.setLogLevel('warn');
    expect(model.visibleLogs.map(l => l.message)).toEqual(['w', 'e']);
    model.setLogNode('charite');
    model.setLogLevel('error');
    expect(model.visibleLogs.map(l => l.message)).toEqual(['e']);
  });
});
