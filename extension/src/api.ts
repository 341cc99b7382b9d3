/** The REST client for `/flame-lab/api/`: one place that turns HTTP answers into data or ApiError. */

import type {
  AnalysisDetail,
  AnalysisSummary,
  Datasets,
  LogEntry,
  LogLevel,
  NodeInfo,
  Status,
  SubmitRequest,
  SubmitResponse,
  VersionInfo
} from './types';

/** Sends one request to a path below the API root; the Lab binding adds token and XSRF. */
export type Requester = (path: string, init: RequestInit) => Promise<Response>;

/**
 * Why a call failed: the Jupyter server is gone, the flame_lab server extension is missing,
 * Jupyter refused the credentials, or flame_lab answered with its own error.
 */
export type ApiErrorKind = 'unreachable' | 'missing' | 'auth' | 'server';

export class ApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly hint: string,
    readonly status: number | null = null,
    readonly errorClass: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const API_ROOT = 'flame-lab/api/';

/** Turns a fetch failure or non-2xx answer into an ApiError that says what to do next. */
export async function errorFromResponse(response: Response, path: string): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const record = body && typeof body === 'object' ? (body as Record<string, unknown>) : null;
  if (record && typeof record.error === 'string' && typeof record.message === 'string') {
    return new ApiError(
      'server',
      record.message,
      typeof record.hint === 'string' ? record.hint : '',
      response.status,
      record.error
    );
  }
  if (response.status === 401 || response.status === 403) {
    return new ApiError(
      'auth',
      `JupyterLab refused the request to ${API_ROOT}${path} (HTTP ${response.status}).`,
      'Your Jupyter session may have expired: reload the page and log in again.',
      response.status
    );
  }
  if (response.status === 404) {
    return new ApiError(
      'missing',
      'The flame_lab server extension is not answering: its API was not found on this Jupyter server.',
      'Install flame-lab in the environment that runs Jupyter (pip install flame-lab), ' +
        'check `jupyter server extension list` shows flame_lab enabled, then restart JupyterLab.',
      404
    );
  }
  return new ApiError(
    'server',
    `The flame_lab server failed on ${path} (HTTP ${response.status}).`,
    'Look at the JupyterLab server log for the cause, then retry.',
    response.status
  );
}

export class FlameApi {
  /** `profile()` names the federation profile from settings; empty means the server's default. */
  constructor(
    private readonly request: Requester,
    private readonly profile: () => string = () => ''
  ) {}

  version(): Promise<VersionInfo> {
    return this.get('version');
  }

  status(): Promise<Status> {
    return this.get('status');
  }

  async nodes(): Promise<NodeInfo[]> {
    return (await this.get<{ nodes: NodeInfo[] }>('nodes')).nodes;
  }

  datasets(): Promise<Datasets> {
    return this.get<Datasets>('datasets');
  }

  async analyses(): Promise<AnalysisSummary[]> {
    return (await this.get<{ analyses: AnalysisSummary[] }>('analyses')).analyses;
  }

  analysis(id: string): Promise<AnalysisDetail> {
    return this.get(`analyses/${encodeURIComponent(id)}`);
  }

  async logs(id: string, node?: string, level?: LogLevel): Promise<LogEntry[]> {
    const query: Record<string, string> = {};
    if (node) {
      query.node = node;
    }
    if (level) {
      query.level = level;
    }
    const path = `analyses/${encodeURIComponent(id)}/logs`;
    return (await this.get<{ logs: LogEntry[] }>(path, query)).logs;
  }

  submit(body: SubmitRequest): Promise<SubmitResponse> {
    return this.send('POST', 'analyses', body);
  }

  async cancel(id: string): Promise<AnalysisSummary> {
    const path = `analyses/${encodeURIComponent(id)}/cancel`;
    return (await this.send<{ analysis: AnalysisSummary }>('POST', path, {})).analysis;
  }

  async sandbox(action: 'start' | 'stop'): Promise<Status> {
    return (await this.send<{ status: Status }>('POST', `sandbox/${action}`, {})).status;
  }

  /** The path with `profile` and any other query parameters appended. */
  url(path: string, query: Record<string, string> = {}): string {
    const params = new URLSearchParams(query);
    const profile = this.profile();
    if (profile) {
      params.set('profile', profile);
    }
    const text = params.toString();
    return text ? `${path}?${text}` : path;
  }

  private get<T>(path: string, query: Record<string, string> = {}): Promise<T> {
    return this.call<T>(this.url(path, query), { method: 'GET' });
  }

  private send<T>(method: string, path: string, body: unknown): Promise<T> {
    return this.call<T>(this.url(path), {
      method,
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  private async call<T>(path: string, init: RequestInit): Promise<T> {
    let response: Response;
    try {
      response = await this.request(path, init);
    } catch {
      throw new ApiError(
        'unreachable',
        'The Jupyter server cannot be reached.',
        'Check that JupyterLab is still running (its terminal window), then wait: the panel retries by itself.'
      );
    }
    if (!response.ok) {
      throw await errorFromResponse(response, path.split('?')[0]);
    }
    try {
      return (await response.json()) as T;
    } catch {
      throw new ApiError(
        'missing',
        `The answer from ${API_ROOT}${path.split('?')[0]} is not JSON.`,
        'Another program may be answering on this path: check the flame_lab server extension is installed.',
        response.status
      );
    }
  }
}
