/** The FLAME side panel: a thin view that draws FlameModel and forwards clicks and keys to it. */

import { Widget } from '@lumino/widgets';

import { h } from './dom';
import { flameIcon } from './icon';
import { groupKey, relativeTime, waitingLines, type FlameModel } from './model';
import {
  LOG_LEVELS,
  type AnalysisNode,
  type AnalysisSummary,
  type DatasetDescription,
  type LogLevel
} from './types';

export const PANEL_ID = 'flame-lab-panel';

export interface PanelActions {
  /** Inserts the result cell for an analysis into the active notebook. */
  openResult(analysisId: string): void;
  /** Shows an error a button caused (cancel, sandbox start) to the user. */
  reportError(title: string, error: unknown): void;
  /** Asks before a destructive action; true to go ahead. */
  confirm(title: string, message: string, label: string): Promise<boolean>;
}

const CONNECTION_TEXT: Record<string, string> = {
  connecting: 'Connecting to the flame_lab server…',
  connected: 'Connected',
  unreachable: 'Jupyter server unreachable',
  missing: 'flame_lab server extension missing',
  auth: 'Not authorized'
};

function nodeState(node: AnalysisNode): string {
  if (node.approval === 'rejected') {
    return 'rejected';
  }
  if (node.execution) {
    return node.execution;
  }
  return node.approval === 'approved' ? 'approved' : 'pending';
}

function percent(value: number): number {
  return Math.max(0, Math.min(100, Math.round(value)));
}

function progressBar(value: number, label: string): HTMLElement {
  const bar = h('div', {
    class: 'jp-FlamePanel-progress',
    role: 'progressbar',
    'aria-label': label,
    'aria-valuemin': 0,
    'aria-valuemax': 100,
    'aria-valuenow': percent(value)
  });
  const fill = h('div', { class: 'jp-FlamePanel-progressFill' });
  fill.style.width = `${percent(value)}%`;
  bar.appendChild(fill);
  return bar;
}

function chip(state: string, text: string, title?: string): HTMLElement {
  return h(
    'span',
    { class: `jp-FlamePanel-chip jp-mod-${state.replace(/[^a-z]/g, '')}`, 'data-state': state, title },
    text
  );
}

export class FlamePanel extends Widget {
  private readonly unsubscribe: () => void;
  private lastRender = '';

  constructor(
    private readonly model: FlameModel,
    private readonly actions: PanelActions
  ) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-FlamePanel');
    this.title.icon = flameIcon;
    this.title.caption = 'FLAME';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'FLAME');
    this.unsubscribe = model.subscribe(() => this.render());
    this.render();
  }

  dispose(): void {
    this.unsubscribe();
    super.dispose();
  }

  protected onAfterShow(): void {
    this.model.setVisible(true);
  }

  protected onAfterHide(): void {
    this.model.setVisible(false);
  }

  /** Redraws from the model, skipping identical states and keeping keyboard focus in place. */
  render(): void {
    const m = this.model;
    const key = JSON.stringify([
      m.connection,
      m.problem,
      m.failures,
      m.isVisible,
      m.versionWarning,
      m.status,
      m.nodes,
      m.analyses,
      m.selectedId,
      m.detail,
      m.logs,
      m.logLevel,
      m.logNode,
      m.datasets,
      m.datasetsProblem,
      m.filterText,
      m.shown,
      Math.floor(Date.now() / 30000) // relative times move on
    ]);
    if (key === this.lastRender) {
      return;
    }
    this.lastRender = key;
    const active = document.activeElement as HTMLElement | null;
    const focusKey = active && this.node.contains(active) ? active.dataset.focus : undefined;
    this.node.replaceChildren(
      this.header(),
      ...this.banners(),
      this.federation(),
      this.nodesSection(),
      this.dataSection(),
      this.analysesSection(),
      this.detailSection()
    );
    if (focusKey) {
      const target = this.node.querySelector<HTMLElement>(`[data-focus="${focusKey}"]`);
      target?.focus();
      if (target instanceof HTMLInputElement) {
        target.setSelectionRange(target.value.length, target.value.length);
      }
    }
  }

  private header(): HTMLElement {
    const refresh = h(
      'button',
      { class: 'jp-FlamePanel-button', type: 'button', 'data-focus': 'refresh', title: 'Refresh now' },
      'Refresh'
    );
    refresh.addEventListener('click', () => {
      void this.model.refresh().then(() => this.model.loadDatasets());
    });
    const m = this.model;
    let connection = CONNECTION_TEXT[m.connection] ?? m.connection;
    if (m.connection === 'connected' && m.status && !m.status.reachable) {
      connection = m.status.federation.kind === 'sandbox' ? 'Sandbox not running' : 'Hub unreachable';
    }
    return h(
      'div',
      { class: 'jp-FlamePanel-header' },
      h('h2', { class: 'jp-FlamePanel-title' }, 'FLAME'),
      h(
        'span',
        {
          class: 'jp-FlamePanel-connection',
          'data-connection': m.connection,
          'data-reachable': m.status ? String(m.status.reachable) : null
        },
        connection
      ),
      refresh
    );
  }

  private banners(): HTMLElement[] {
    const m = this.model;
    const out: HTMLElement[] = [];
    if (m.versionWarning) {
      out.push(
        h(
          'div',
          { class: 'jp-FlamePanel-banner jp-mod-warning', role: 'alert', 'data-kind': 'version' },
          h('strong', {}, 'Version mismatch. '),
          m.versionWarning
        )
      );
    }
    if (m.problem) {
      const retry = h(
        'button',
        { class: 'jp-FlamePanel-button', type: 'button', 'data-focus': 'retry' },
        'Retry now'
      );
      retry.addEventListener('click', () => void m.refresh());
      const seconds = Math.round(m.nextDelay / 1000);
      out.push(
        h(
          'div',
          {
            class: 'jp-FlamePanel-banner jp-mod-error',
            role: 'alert',
            'data-kind': m.connection === 'connected' ? 'federation' : m.connection
          },
          h('p', { class: 'jp-FlamePanel-problem' }, m.problem.message),
          m.problem.hint ? h('p', { class: 'jp-FlamePanel-hint' }, m.problem.hint) : null,
          h(
            'p',
            { class: 'jp-FlamePanel-retry' },
            m.isVisible ? `Retrying in ${seconds} s. ` : '',
            retry
          )
        )
      );
    }
    return out;
  }

  private federation(): HTMLElement {
    const s = this.model.status;
    const section = h(
      'section',
      { class: 'jp-FlamePanel-section', 'aria-label': 'Federation' },
      h('h3', {}, 'Federation')
    );
    if (!s) {
      section.appendChild(h('p', { class: 'jp-FlamePanel-muted' }, 'No status yet.'));
      return section;
    }
    section.appendChild(
      h(
        'p',
        { class: 'jp-FlamePanel-federation' },
        h('span', { class: 'jp-FlamePanel-name' }, s.federation.name),
        ` (${s.federation.kind}) `,
        chip(s.reachable ? 'online' : 'offline', s.reachable ? 'reachable' : 'unreachable')
      )
    );
    section.appendChild(h('p', { class: 'jp-FlamePanel-muted' }, s.federation.coreUrl));
    section.appendChild(
      h(
        'p',
        { class: 'jp-FlamePanel-key' },
        'Key: ',
        s.keyId
          ? h('code', { 'data-key-id': s.keyId, class: 'jp-FlamePanel-keyId' }, groupKey(s.keyId))
          : 'none',
        s.keyHint ? h('span', { class: 'jp-FlamePanel-hint' }, ` ${s.keyHint}`) : null
      )
    );
    if (s.federation.kind === 'sandbox') {
      const action = s.reachable ? 'stop' : 'start';
      const button = h(
        'button',
        { class: 'jp-FlamePanel-button', type: 'button', 'data-focus': `sandbox-${action}` },
        s.reachable ? 'Stop sandbox' : 'Start sandbox'
      );
      button.addEventListener('click', () => {
        const go =
          action === 'stop'
            ? this.actions.confirm(
                'Stop the sandbox?',
                'The sandbox hub and its nodes stop; running analyses are interrupted. ' +
                  'Start it again from here or with `flame-lab sandbox up`.',
                'Stop sandbox'
              )
            : Promise.resolve(true);
        void go.then(ok => {
          if (ok) {
            this.model.sandbox(action).catch(error => this.actions.reportError('Sandbox', error));
          }
        });
      });
      section.appendChild(button);
    }
    return section;
  }

  private nodesSection(): HTMLElement {
    const list = h('ul', { class: 'jp-FlamePanel-nodes', 'aria-label': 'Nodes' });
    for (const node of this.model.nodes) {
      list.appendChild(
        h(
          'li',
          {},
          h('span', { class: 'jp-FlamePanel-name' }, node.name),
          ` ${node.type} `,
          chip(node.online ? 'online' : 'offline', node.online ? 'online' : 'offline')
        )
      );
    }
    return h(
      'section',
      { class: 'jp-FlamePanel-section', 'aria-label': 'Nodes' },
      h('h3', {}, 'Nodes'),
      this.model.nodes.length
        ? list
        : h('p', { class: 'jp-FlamePanel-muted' }, 'No nodes known yet.')
    );
  }

  private analysesSection(): HTMLElement {
    const m = this.model;
    const list = h('ul', {
      class: 'jp-FlamePanel-analyses',
      role: 'listbox',
      'aria-label': 'Analyses',
      tabindex: 0,
      'data-focus': 'analyses',
      'aria-activedescendant': m.selectedId ? this.optionId(m.selectedId) : null
    });
    const matching = m.filteredAnalyses;
    for (const analysis of matching.slice(0, m.shown)) {
      list.appendChild(this.analysisRow(analysis));
    }
    list.addEventListener('keydown', event => {
      const moves: Record<string, () => Promise<void>> = {
        ArrowDown: () => m.selectRelative(1),
        ArrowUp: () => m.selectRelative(-1),
        Home: () => m.selectEdge('first'),
        End: () => m.selectEdge('last')
      };
      const move = moves[event.key];
      if (move) {
        event.preventDefault();
        void move();
      }
    });
    const filter = h('input', {
      type: 'search',
      class: 'jp-FlamePanel-filter',
      placeholder: 'Filter by name or id',
      'aria-label': 'Filter analyses',
      'data-focus': 'filter',
      value: m.filterText
    }) as HTMLInputElement;
    filter.addEventListener('input', () => m.setFilter(filter.value));
    let more: HTMLElement | null = null;
    if (matching.length > m.shown) {
      more = h(
        'button',
        { class: 'jp-FlamePanel-button jp-FlamePanel-more', type: 'button', 'data-focus': 'more' },
        `Show more (${matching.length - m.shown} more)`
      );
      more.addEventListener('click', () => m.showMore());
    }
    if (!m.analyses.length) {
      return h(
        'section',
        { class: 'jp-FlamePanel-section', 'aria-label': 'Analyses' },
        h('h3', {}, 'Analyses'),
        h('p', { class: 'jp-FlamePanel-muted' }, 'No analyses yet: use Submit to FLAME in a notebook.')
      );
    }
    return h(
      'section',
      { class: 'jp-FlamePanel-section', 'aria-label': 'Analyses' },
      h('h3', {}, `Analyses (${m.analyses.length})`),
      filter,
      matching.length ? list : h('p', { class: 'jp-FlamePanel-muted' }, 'No analysis matches.'),
      more
    );
  }

  private dataSection(): HTMLElement {
    const m = this.model;
    const body: (HTMLElement | string)[] = [];
    if (m.datasetsProblem) {
      body.push(h('p', { class: 'jp-FlamePanel-muted' }, m.datasetsProblem));
    } else if (!m.datasets) {
      body.push(h('p', { class: 'jp-FlamePanel-muted' }, 'No data descriptions yet.'));
    } else {
      for (const d of m.datasets.nodes) {
        body.push(this.datasetView(d));
      }
      if (m.datasets.missing.length) {
        body.push(
          h('p', { class: 'jp-FlamePanel-muted' }, `Not described (yet): ${m.datasets.missing.join(', ')}`)
        );
      }
    }
    return h(
      'section',
      { class: 'jp-FlamePanel-section jp-FlamePanel-data', 'aria-label': 'Data' },
      h('h3', {}, 'Data'),
      h(
        'p',
        { class: 'jp-FlamePanel-muted' },
        'What each node holds, as it describes it, never rows (in a notebook: %flame data).'
      ),
      ...body
    );
  }

  private datasetView(d: DatasetDescription): HTMLElement {
    const parts: HTMLElement[] = [];
    for (const table of d.tables) {
      const rows = h('table', { class: 'jp-FlamePanel-dataTable', 'aria-label': `${d.node} ${table.name}` });
      rows.appendChild(
        h('tr', {}, h('th', { scope: 'col' }, 'Column'), h('th', { scope: 'col' }, 'Type and values'))
      );
      for (const c of table.columns) {
        // two columns, values under the type: the side panel is narrow
        rows.appendChild(
          h(
            'tr',
            { 'data-column': c.name, title: c.description ?? '' },
            h('td', {}, h('code', {}, c.name)),
            h(
              'td',
              {},
              c.type + (c.unit ? ` [${c.unit}]` : ''),
              c.values ? h('div', { class: 'jp-FlamePanel-muted' }, c.values + (c.empty ? ' (may be empty)' : '')) : null
            )
          )
        );
      }
      parts.push(h('div', { class: 'jp-FlamePanel-dataName' }, `${table.name} · ${table.records} rows`), rows);
    }
    if (d.fhir.length) {
      const list = h('ul', { class: 'jp-FlamePanel-fhir' });
      for (const r of d.fhir) {
        const codes = r.codes.map(c => `${c.system} ${c.code}${c.display ? ` ${c.display}` : ''}`);
        list.appendChild(
          h('li', { title: codes.join('\n') }, `${r.type} · ${r.records}`, codes.length ? ` · ${codes.length} codes` : '')
        );
      }
      parts.push(h('div', { class: 'jp-FlamePanel-dataName' }, 'FHIR'), list);
    }
    if (d.codeSystems.length) {
      parts.push(h('p', { class: 'jp-FlamePanel-muted' }, `Code systems: ${d.codeSystems.join(', ')}`));
    }
    if (d.policy) {
      parts.push(h('p', { class: 'jp-FlamePanel-muted' }, `Policy: ${d.policy}`));
    }
    return h(
      'details',
      { class: 'jp-FlamePanel-dataset', 'data-node': d.node },
      h('summary', {}, h('span', { class: 'jp-FlamePanel-name' }, d.node), ` · ${d.records} records`),
      ...parts
    );
  }

  private optionId(id: string): string {
    return `flame-lab-analysis-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  }

  private analysisRow(analysis: AnalysisSummary): HTMLElement {
    const selected = analysis.id === this.model.selectedId;
    const chips = h('span', { class: 'jp-FlamePanel-chips' });
    for (const node of analysis.nodes) {
      const state = nodeState(node);
      const c = chip(state, node.nodeName, `${node.nodeName}: ${state}`);
      // The state is also said in words for screen readers, not by border color alone.
      c.appendChild(h('span', { class: 'jp-FlamePanel-srOnly' }, `: ${state}`));
      chips.appendChild(c);
    }
    const row = h(
      'li',
      {
        id: this.optionId(analysis.id),
        role: 'option',
        'aria-selected': selected ? 'true' : 'false',
        class: `jp-FlamePanel-analysis${selected ? ' jp-mod-selected' : ''}`,
        'data-analysis-id': analysis.id
      },
      h(
        'div',
        { class: 'jp-FlamePanel-analysisHead' },
        h('span', { class: 'jp-FlamePanel-name', title: analysis.name }, analysis.name),
        chip(analysis.status, analysis.status)
      ),
      h(
        'div',
        { class: 'jp-FlamePanel-muted jp-FlamePanel-analysisMeta' },
        h('code', {}, analysis.id.slice(0, 8)),
        ' · ',
        h('time', { datetime: analysis.createdAt, title: analysis.createdAt }, relativeTime(analysis.createdAt))
      ),
      progressBar(analysis.progress, `${analysis.name} progress`),
      chips,
      this.waitingLine(analysis)
    );
    row.addEventListener('click', () => void this.model.select(analysis.id));
    return row;
  }

  /** The first thing a listed analysis waits for, in one line (all of them as its tooltip). */
  private waitingLine(analysis: AnalysisSummary): HTMLElement | null {
    const lines = waitingLines(analysis);
    if (!lines.length) {
      return null;
    }
    const more = lines.length > 1 ? ` (+${lines.length - 1})` : '';
    return h(
      'div',
      { class: 'jp-FlamePanel-muted jp-FlamePanel-rowWaiting', title: lines.join('\n'), 'data-kind': 'waiting' },
      lines[0] + more
    );
  }

  /** Everything the selected analysis waits for, node by node, as the server words it. */
  private waitingBanner(analysis: AnalysisSummary): HTMLElement | null {
    const lines = waitingLines(analysis);
    if (!lines.length) {
      return null;
    }
    return h(
      'div',
      { class: 'jp-FlamePanel-banner jp-mod-waiting', role: 'status', 'data-kind': 'waiting' },
      h('strong', {}, 'Waiting'),
      h('ul', { class: 'jp-FlamePanel-waiting' }, ...lines.map(line => h('li', {}, line)))
    );
  }

  private detailSection(): HTMLElement | string {
    const m = this.model;
    const a = m.selected;
    if (!a) {
      return '';
    }
    const detail = m.detail && m.detail.id === a.id ? m.detail : null;
    const section = h(
      'section',
      { class: 'jp-FlamePanel-section jp-FlamePanel-detail', 'aria-label': 'Selected analysis' },
      h('h3', {}, a.name),
      h(
        'p',
        { class: 'jp-FlamePanel-muted' },
        'id ',
        h('code', {}, a.id),
        ' · created ',
        h('time', { datetime: a.createdAt, title: a.createdAt }, relativeTime(a.createdAt))
      )
    );
    if (detail?.failure) {
      section.appendChild(
        h(
          'div',
          { class: 'jp-FlamePanel-banner jp-mod-error', role: 'alert', 'data-kind': 'failure' },
          h('strong', {}, `Failed at ${detail.failure.nodeName}: `),
          detail.failure.reason
        )
      );
    }
    const waiting = this.waitingBanner(a);
    if (waiting) {
      section.appendChild(waiting);
    }
    const table = h('table', { class: 'jp-FlamePanel-nodeTable', 'aria-label': 'Per-node progress' });
    table.appendChild(
      h('tr', {}, h('th', { scope: 'col' }, 'Node'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Progress'))
    );
    for (const node of a.nodes) {
      const state = nodeState(node);
      table.appendChild(
        h(
          'tr',
          { 'data-node': node.nodeName },
          h('td', {}, node.nodeName, node.type === 'aggregator' ? ' (aggregator)' : ''),
          h('td', {}, chip(state, state)),
          h('td', {}, progressBar(node.progress, `${node.nodeName} progress`))
        )
      );
      if (node.comment) {
        const lines = node.comment.split('\n').filter(line => line.trim());
        const last = lines.length ? lines[lines.length - 1].trim() : '';
        const cell =
          lines.length > 1
            ? h('details', {}, h('summary', {}, last), h('pre', { class: 'jp-FlamePanel-trace' }, node.comment))
            : last;
        table.appendChild(h('tr', { class: 'jp-FlamePanel-comment' }, h('td', { colspan: 3 }, cell)));
      }
    }
    section.appendChild(table);

    const buttons = h('div', { class: 'jp-FlamePanel-actions' });
    if (detail?.resultAvailable) {
      const open = h('button', { class: 'jp-FlamePanel-button jp-mod-accept', type: 'button', 'data-focus': 'open-result' }, 'Open result in notebook');
      open.addEventListener('click', () => this.actions.openResult(a.id));
      buttons.appendChild(open);
    }
    if (['pending', 'approved', 'running'].includes(a.status)) {
      const cancel = h('button', { class: 'jp-FlamePanel-button', type: 'button', 'data-focus': 'cancel' }, 'Cancel analysis');
      cancel.addEventListener('click', () => {
        void this.actions
          .confirm(
            'Cancel this analysis?',
            `"${a.name}" (${a.id.slice(0, 8)}) stops at every node; it cannot be resumed.`,
            'Cancel analysis'
          )
          .then(ok => {
            if (ok) {
              m.cancel(a.id).catch(error => this.actions.reportError('Cancel analysis', error));
            }
          });
      });
      buttons.appendChild(cancel);
    }
    section.appendChild(buttons);
    section.appendChild(this.logsView(a));
    return section;
  }

  private logsView(a: AnalysisSummary): HTMLElement {
    const m = this.model;
    const level = h('select', { id: 'flame-lab-log-level', 'data-focus': 'log-level' }) as HTMLSelectElement;
    for (const name of LOG_LEVELS) {
      level.appendChild(h('option', { value: name, selected: name === m.logLevel }, name));
    }
    level.addEventListener('change', () => m.setLogLevel(level.value as LogLevel));
    const node = h('select', { id: 'flame-lab-log-node', 'data-focus': 'log-node' }) as HTMLSelectElement;
    node.appendChild(h('option', { value: '', selected: m.logNode === null }, 'all nodes'));
    for (const n of a.nodes) {
      node.appendChild(h('option', { value: n.nodeName, selected: m.logNode === n.nodeName }, n.nodeName));
    }
    node.addEventListener('change', () => m.setLogNode(node.value || null));
    const lines = h('ol', { class: 'jp-FlamePanel-logLines', role: 'log', 'aria-label': 'Logs' });
    const visible = m.visibleLogs;
    for (const entry of visible) {
      lines.appendChild(
        h(
          'li',
          { class: `jp-FlamePanel-log jp-mod-${entry.level}` },
          h('span', { class: 'jp-FlamePanel-logTime' }, entry.time),
          ' ',
          h('span', { class: 'jp-FlamePanel-logNode' }, entry.nodeName),
          ' ',
          h('span', { class: 'jp-FlamePanel-logLevel' }, entry.level),
          ' ',
          h('span', { class: 'jp-FlamePanel-logMessage' }, entry.message)
        )
      );
    }
    return h(
      'div',
      { class: 'jp-FlamePanel-logs' },
      h('h4', {}, 'Logs'),
      h(
        'div',
        { class: 'jp-FlamePanel-logFilter' },
        h('label', { for: 'flame-lab-log-level' }, 'Level at least '),
        level,
        h('label', { for: 'flame-lab-log-node' }, ' from '),
        node
      ),
      visible.length ? lines : h('p', { class: 'jp-FlamePanel-muted' }, 'No log lines at this level yet.')
    );
  }
}
