/**
 * The FLAME panel's state and polling, free of any UI framework so jest can drive it:
 * connection health, federation, nodes, analyses, selection, logs and their filter.
 */

import { ApiError, type FlameApi } from './api';
import {
  LOG_LEVELS,
  type AnalysisDetail,
  type AnalysisSummary,
  type Datasets,
  type ErrorInfo,
  type LogEntry,
  type LogLevel,
  type NodeInfo,
  type Status
} from './types';
import { versionWarning } from './version';

/** Where the panel stands with the flame_lab server (not with the federation behind it). */
export type Connection = 'connecting' | 'connected' | 'unreachable' | 'missing' | 'auth';

/** Timers, injected so tests can step time by hand instead of waiting. */
export interface Scheduler {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const browserScheduler: Scheduler = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: handle => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>)
};

export interface ModelOptions {
  /** Milliseconds between refreshes while all is well. */
  interval?: number;
  /** Longest wait between attempts while the server or federation is failing. */
  maxDelay?: number;
  scheduler?: Scheduler;
}

export const DEFAULT_INTERVAL = 2000;
export const DEFAULT_MAX_DELAY = 30000;
const MIN_INTERVAL = 250;

/** Severity rank: lower is more severe, as in syslog. */
export function levelRank(level: string): number {
  const rank = (LOG_LEVELS as readonly string[]).indexOf(level);
  return rank < 0 ? LOG_LEVELS.length : rank;
}

/** Logs at `level` or more severe, from `node` (or every node), oldest first. */
export function filterLogs(logs: LogEntry[], level: LogLevel, node: string | null): LogEntry[] {
  const limit = levelRank(level);
  return logs
    .filter(entry => levelRank(entry.level) <= limit && (node === null || entry.nodeName === node))
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/** Analyses shown before "Show more". */
export const PAGE_SIZE = 20;

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago"; the ISO text when unreadable. */
export function relativeTime(iso: string, now: Date = new Date()): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return iso;
  }
  const seconds = Math.max(0, Math.round((now.getTime() - then) / 1000));
  if (seconds < 60) {
    return `${seconds} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  return `${Math.floor(seconds / 86400)} d ago`;
}

// Control characters (tab and newline aside), bidi controls and invisible format characters:
// the hub and nodes word these texts, so they are shown as escapes, as the CLI does.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;

/** `text` in one line with every control, bidi and invisible character made visible. */
export function visibleText(text: string): string {
  return text
    .replace(/[\t\n]/g, ' ')
    .replace(UNSAFE, c => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    })
    .trim();
}

/** Lines shown of what one analysis waits for (more become "and N more"). */
export const WAITING_LINES = 6;
const WAITING_CHARS = 300;

/**
 * What an analysis waits for, as the server words it (it sends none once the analysis is
 * final), readable: one line per reason, visible characters, duplicates and blanks left out,
 * at most `limit` lines. Whatever is not a list of text is ignored: a newer server cannot break it.
 */
export function waitingLines(analysis: Pick<AnalysisSummary, 'waiting'>, limit = WAITING_LINES): string[] {
  const given: unknown = analysis.waiting;
  if (!Array.isArray(given)) {
    return [];
  }
  const lines: string[] = [];
  for (const item of given) {
    if (typeof item !== 'string') {
      continue;
    }
    let line = visibleText(item);
    if (line.length > WAITING_CHARS) {
      line = `${line.slice(0, WAITING_CHARS - 1)}…`;
    }
    if (line && !lines.includes(line)) {
      lines.push(line);
    }
  }
  if (lines.length > limit) {
    return [...lines.slice(0, limit - 1), `and ${lines.length - limit + 1} more`];
  }
  return lines;
}

/** A key id in groups of four, as the CLI prints it. */
export function groupKey(keyId: string): string {
  return keyId.replace(/(.{4})(?=.)/g, '$1 ');
}

/** Analyses whose name or id contains `text` (case-insensitive). */
export function filterAnalyses(analyses: AnalysisSummary[], text: string): AnalysisSummary[] {
  const needle = text.trim().toLowerCase();
  if (!needle) {
    return analyses;
  }
  return analyses.filter(a => a.name.toLowerCase().includes(needle) || a.id.includes(needle));
}

export class FlameModel {
  connection: Connection = 'connecting';
  /** What went wrong on the last refresh and what to do, or null when it went well. */
  problem: ErrorInfo | null = null;
  versionWarning: string | null = null;
  status: Status | null = null;
  nodes: NodeInfo[] = [];
  analyses: AnalysisSummary[] = [];
  selectedId: string | null = null;
  detail: AnalysisDetail | null = null;
  logs: LogEntry[] = [];
  logLevel: LogLevel = 'info';
  logNode: string | null = null;
  /** The nodes' data descriptions (the data dictionary); null until first read. */
  datasets: Datasets | null = null;
  datasetsProblem: string | null = null;
  /** The analyses list: a filter text and how many rows are shown. */
  filterText = '';
  shown = PAGE_SIZE;
  /** Consecutive failed refreshes; drives the backoff. */
  failures = 0;
  lastUpdated: Date | null = null;

  private interval: number;
  private readonly maxDelay: number;
  private readonly scheduler: Scheduler;
  private readonly listeners = new Set<() => void>();
  private visible = false;
  private disposed = false;
  private timer: unknown = null;
  private inFlight: Promise<void> | null = null;
  private versionChecked = false;

  constructor(
    private readonly api: FlameApi,
    options: ModelOptions = {}
  ) {
    this.interval = Math.max(MIN_INTERVAL, options.interval ?? DEFAULT_INTERVAL);
    this.maxDelay = options.maxDelay ?? DEFAULT_MAX_DELAY;
    this.scheduler = options.scheduler ?? browserScheduler;
  }

  /** Calls `listener` after every change; returns the function that unsubscribes it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get isPolling(): boolean {
    return this.timer !== null || this.inFlight !== null;
  }

  get isVisible(): boolean {
    return this.visible;
  }

  /** The wait before the next refresh: the interval, doubled per failure up to maxDelay. */
  get nextDelay(): number {
    if (this.failures === 0) {
      return this.interval;
    }
    return Math.min(this.maxDelay, this.interval * 2 ** this.failures);
  }

  get selected(): AnalysisSummary | null {
    if (this.selectedId === null) {
      return null;
    }
    if (this.detail && this.detail.id === this.selectedId) {
      return this.detail;
    }
    return this.analyses.find(a => a.id === this.selectedId) ?? null;
  }

  /** The analyses the filter lets through. */
  get filteredAnalyses(): AnalysisSummary[] {
    return filterAnalyses(this.analyses, this.filterText);
  }

  setFilter(text: string): void {
    this.filterText = text;
    this.shown = PAGE_SIZE;
    this.emit();
  }

  showMore(): void {
    this.shown += PAGE_SIZE;
    this.emit();
  }

  /** Reads the data dictionary again (the panel's Refresh, or its first showing). */
  async loadDatasets(): Promise<void> {
    try {
      this.datasets = await this.api.datasets();
      this.datasetsProblem = null;
    } catch (error) {
      this.datasetsProblem = error instanceof ApiError ? error.message : String(error);
    }
    this.emit();
  }

  /** The selected analysis's logs after the level and node filter. */
  get visibleLogs(): LogEntry[] {
    return filterLogs(this.logs, this.logLevel, this.logNode);
  }

  setInterval(ms: number): void {
    this.interval = Math.max(MIN_INTERVAL, ms);
    if (this.timer !== null) {
      this.schedule();
    }
  }

  /** Polls while the panel is shown, stops while hidden; showing refreshes at once. */
  setVisible(visible: boolean): void {
    if (this.disposed || visible === this.visible) {
      return;
    }
    this.visible = visible;
    if (visible) {
      void this.refresh();
    } else {
      this.cancelTimer();
    }
  }

  /** One refresh now (joining one already running); schedules the next if visible. */
  refresh(): Promise<void> {
    if (this.disposed) {
      return Promise.resolve();
    }
    if (this.inFlight) {
      return this.inFlight;
    }
    this.cancelTimer();
    this.inFlight = this.cycle().finally(() => {
      this.inFlight = null;
      if (this.visible && !this.disposed) {
        this.schedule();
      }
      this.emit();
    });
    return this.inFlight;
  }

  /** Selects an analysis (null clears) and fetches its details and logs right away. */
  select(id: string | null): Promise<void> {
    if (id === this.selectedId) {
      return Promise.resolve();
    }
    this.selectedId = id;
    this.detail = null;
    this.logs = [];
    this.logNode = null;
    this.emit();
    return id === null ? Promise.resolve() : this.loadSelected().then(() => this.emit());
  }

  /** Moves the selection by `delta` rows in the list (arrow keys); clamps at both ends. */
  selectRelative(delta: number): Promise<void> {
    if (this.analyses.length === 0) {
      return Promise.resolve();
    }
    const current = this.analyses.findIndex(a => a.id === this.selectedId);
    const start = current < 0 ? (delta > 0 ? -1 : this.analyses.length) : current;
    const index = Math.min(this.analyses.length - 1, Math.max(0, start + delta));
    return this.select(this.analyses[index].id);
  }

  selectEdge(edge: 'first' | 'last'): Promise<void> {
    if (this.analyses.length === 0) {
      return Promise.resolve();
    }
    const index = edge === 'first' ? 0 : this.analyses.length - 1;
    return this.select(this.analyses[index].id);
  }

  setLogLevel(level: LogLevel): void {
    this.logLevel = level;
    this.emit();
  }

  setLogNode(node: string | null): void {
    this.logNode = node;
    this.emit();
  }

  /** Shows a just-submitted analysis at the top of the list and selects it. */
  reveal(summary: AnalysisSummary): Promise<void> {
    this.analyses = [summary, ...this.analyses.filter(a => a.id !== summary.id)];
    this.selectedId = null;
    return this.select(summary.id);
  }

  /** Asks the server to cancel an analysis; the answer replaces its row. */
  async cancel(id: string): Promise<void> {
    const summary = await this.api.cancel(id);
    this.analyses = this.analyses.map(a => (a.id === summary.id ? summary : a));
    if (this.detail && this.detail.id === summary.id) {
      this.detail = { ...this.detail, ...summary };
    }
    this.emit();
  }

  /** Starts or stops the sandbox federation and shows the status the server answers. */
  async sandbox(action: 'start' | 'stop'): Promise<void> {
    this.status = await this.api.sandbox(action);
    this.emit();
    await this.refresh();
  }

  dispose(): void {
    this.disposed = true;
    this.visible = false;
    this.cancelTimer();
    this.listeners.clear();
  }

  private async cycle(): Promise<void> {
    try {
      if (!this.versionChecked) {
        this.versionWarning = versionWarning(await this.api.version());
        this.versionChecked = true;
      }
      const status = await this.api.status();
      this.status = status;
      this.connection = 'connected';
      if (!status.reachable) {
        // nothing answers: no node is online and the dictionary may be stale
        this.nodes = this.nodes.map(n => ({ ...n, online: false }));
        this.datasets = null;
        this.problem = status.error ?? {
          message: `The federation "${status.federation.name}" is not reachable.`,
          hint: 'The panel keeps retrying; check the federation settings if this persists.'
        };
        this.failures += 1;
        return;
      }
      const [nodes, analyses] = await Promise.all([this.api.nodes(), this.api.analyses()]);
      this.nodes = nodes;
      this.analyses = analyses;
      if (this.datasets === null && this.datasetsProblem === null) {
        await this.loadDatasets();
      }
      if (this.selectedId !== null) {
        await this.loadSelected();
      }
      this.problem = null;
      this.failures = 0;
      this.lastUpdated = new Date();
    } catch (error) {
      this.fail(error);
    }
  }

  private async loadSelected(): Promise<void> {
    const id = this.selectedId;
    if (id === null) {
      return;
    }
    try {
      const [detail, logs] = await Promise.all([this.api.analysis(id), this.api.logs(id)]);
      if (this.selectedId === id) {
        this.detail = detail;
        this.logs = logs;
      }
    } catch (error) {
      if (this.selectedId === id) {
        this.fail(error);
      }
    }
  }

  private fail(error: unknown): void {
    this.failures += 1;
    if (error instanceof ApiError) {
      this.problem = { message: error.message, hint: error.hint };
      if (error.kind !== 'server') {
        this.connection = error.kind;
        this.versionChecked = false;
      }
    } else {
      this.problem = {
        message: `Unexpected error in the FLAME panel: ${String(error)}`,
        hint: 'Reload the page; if it persists, report it with the browser console log.'
      };
    }
  }

  private schedule(): void {
    this.cancelTimer();
    this.timer = this.scheduler.setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, this.nextDelay);
  }

  private cancelTimer(): void {
    if (this.timer !== null) {
      this.scheduler.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private emit(): void {
    for (const listener of [...this.listeners]) {
      listener();
    }
  }
}
