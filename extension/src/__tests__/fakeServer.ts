/** A scripted stand-in for the flame_lab REST API, used by the unit tests only. */

import { FlameApi } from '../api';
import type { Scheduler } from '../model';
import type { AnalysisDetail, AnalysisSummary, LogEntry, NodeInfo, Status } from '../types';

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

type Handler = (call: Call) => Response | Promise<Response>;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}

export const NODES: NodeInfo[] = [
  { id: 'n1', name: 'charite', type: 'default', online: true },
  { id: 'n2', name: 'tum', type: 'default', online: true },
  { id: 'n3', name: 'aggregator', type: 'aggregator', online: true }
];

export function status(overrides: Partial<Status> = {}): Status {
  return {
    federation: { name: 'sandbox', kind: 'sandbox', coreUrl: 'http://127.0.0.1:1/core/' },
    reachable: true,
    error: null,
    keyId: 'ed25519:abcd',
    keyFile: '/home/r/.local/share/flame-lab/keys/researcher.key',
    keyHint: null,
    versions: { flameLab: '0.1.0', flameHubClient: '1.1.0' },
    ...overrides
  };
}

export function summary(id: string, overrides: Partial<AnalysisSummary> = {}): AnalysisSummary {
  return {
    id,
    name: `analysis-${id}`,
    createdAt: '2026-11-28T00:00:00Z',
    status: 'running',
    progress: 50,
    nodes: [
      {
        nodeId: 'n1',
        nodeName: 'charite',
        type: 'default',
        approval: 'approved',
        execution: 'executing',
        progress: 50,
        comment: null
      }
    ],
    ...overrides
  };
}

export function detail(id: string): AnalysisDetail {
  return {
    ...summary(id),
    bundleHash: 'sha256:00',
    hubUrl: 'http://127.0.0.1:1/analyses/' + id,
    failure: null,
    resultAvailable: false
  };
}

/**
 * Routes "METHOD path" to handlers; unknown routes answer like Jupyter does for a missing
 * extension (404 with an HTML page). `down = true` makes every request fail like a dead server.
 */
export class FakeServer {
  calls: Call[] = [];
  down = false;
  routes = new Map<string, Handler>();
  logs: LogEntry[] = [];

  constructor() {
    this.on('GET version', () => json({ version: '0.1.0', api: 1 }));
    this.on('GET status', () => json(status()));
    this.on('GET nodes', () => json({ nodes: NODES }));
    this.on('GET analyses', () => json({ analyses: [summary('a1'), summary('a2'), summary('a3')] }));
    this.on('GET datasets', () =>
      json({
        nodes: [
          {
            node: 'charite',
            records: '100-999',
            tables: [
              {
                name: 'patients.csv',
                records: '100-999',
                columns: [
                  { name: 'age', type: 'integer', unit: 'a', description: null, values: '10 to 100', empty: false }
                ]
              }
            ],
            fhir: [],
            codeSystems: ['ICD-10-GM', 'LOINC'],
            policy: 'approval auto',
            describedAt: null
          }
        ],
        missing: ['tum']
      })
    );
  }

  on(route: string, handler: Handler): this {
    this.routes.set(route, handler);
    return this;
  }

  callsTo(route: string): Call[] {
    const [method, path] = route.split(' ');
    return this.calls.filter(c => c.method === method && c.path === path);
  }

  api(profile = ''): FlameApi {
    return new FlameApi(async (pathAndQuery, init) => {
      const [path, query = ''] = pathAndQuery.split('?');
      const call: Call = {
        method: init.method ?? 'GET',
        path,
        query: new URLSearchParams(query),
        body: typeof init.body === 'string' ? JSON.parse(init.body) : null
      };
      this.calls.push(call);
      if (this.down) {
        throw new TypeError('Failed to fetch');
      }
      const exact = this.routes.get(`${call.method} ${path}`);
      if (exact) {
        return exact(call);
      }
      const detailMatch = /^analyses\/([^/]+)$/.exec(path);
      if (call.method === 'GET' && detailMatch) {
        return json(detail(decodeURIComponent(detailMatch[1])));
      }
      if (call.method === 'GET' && /^analyses\/[^/]+\/logs$/.test(path)) {
        return json({ logs: this.logs });
      }
      return new Response('<html>404: Not Found</html>', {
        status: 404,
        headers: { 'Content-Type': 'text/html' }
      });
    }, () => profile);
  }
}

/** Timers held until a test fires them, so nothing depends on the wall clock. */
export class ManualScheduler implements Scheduler {
  private next = 1;
  pending = new Map<number, { callback: () => void; ms: number }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { callback, ms });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** The delays of timers still waiting. */
  get delays(): number[] {
    return [...this.pending.values()].map(t => t.ms);
  }

  /** Fires the single pending timer; fails loudly if there is not exactly one. */
  fire(): void {
    if (this.pending.size !== 1) {
      throw new Error(`expected one pending timer, found ${this.pending.size}`);
    }
    const [[id, timer]] = [...this.pending.entries()];
    this.pending.delete(id);
    timer.callback();
  }
}
