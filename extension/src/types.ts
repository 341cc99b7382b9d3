/** Shapes of the flame_lab server's REST answers (`/flame-lab/api/`), as the contract fixes them. */

export type FederationKind = 'sandbox' | 'hub';

export interface ErrorInfo {
  message: string;
  hint: string | null;
}

export interface VersionInfo {
  version: string;
  api: number;
}

export interface Status {
  federation: { name: string; kind: FederationKind; coreUrl: string };
  reachable: boolean;
  error: ErrorInfo | null;
  keyId: string | null;
  keyFile: string;
  keyHint: string | null;
  versions: { flameLab: string; flameHubClient: string };
}

export interface NodeInfo {
  id: string;
  name: string;
  type: 'default' | 'aggregator';
  online: boolean;
}

export type OverallStatus =
  | 'pending'
  | 'approved'
  | 'running'
  | 'executed'
  | 'failed'
  | 'cancelled'
  | 'rejected';

export type ExecutionStatus =
  | 'starting'
  | 'started'
  | 'executing'
  | 'executed'
  | 'failed'
  | 'stopped';

export interface AnalysisNode {
  nodeId: string;
  nodeName: string;
  type: 'default' | 'aggregator';
  approval: 'approved' | 'rejected' | null;
  execution: ExecutionStatus | null;
  progress: number;
  comment: string | null;
}

export interface AnalysisSummary {
  id: string;
  name: string;
  createdAt: string;
  status: OverallStatus;
  progress: number;
  nodes: AnalysisNode[];
  /**
   * What an unfinished analysis waits for, one line per node, each naming its node (an offline
   * node, a manual approval, a node that approved but does not start). Absent from older servers.
   */
  waiting?: string[];
}

export interface AnalysisDetail extends AnalysisSummary {
  bundleHash: string;
  hubUrl: string;
  failure: { nodeName: string; reason: string } | null;
  resultAvailable: boolean;
}

export const LOG_LEVELS = [
  'emerg',
  'alert',
  'crit',
  'error',
  'warn',
  'notice',
  'info',
  'debug'
] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogEntry {
  time: string;
  nodeName: string;
  level: LogLevel;
  message: string;
}

export interface Provenance {
  analysisId: string;
  hubUrl: string;
  bundleHash: string;
  submittedAt: string;
  nodes: string[];
}

export interface SubmitRequest {
  notebook: unknown;
  nodes?: string[];
  name?: string;
  passphrase?: string;
}

export interface SubmitResponse {
  analysis: AnalysisSummary;
  provenance: Provenance;
}

export interface DatasetColumn {
  name: string;
  type: string;
  unit: string | null;
  description: string | null;
  values: string;
  empty: boolean;
}

export interface DatasetDescription {
  node: string;
  records: string;
  tables: { name: string; records: string; columns: DatasetColumn[] }[];
  fhir: {
    type: string;
    records: string;
    codes: { system: string; code: string; display: string | null; unit: string | null; records: string }[];
  }[];
  codeSystems: string[];
  policy: string;
  describedAt: string | null;
}

export interface Datasets {
  nodes: DatasetDescription[];
  missing: string[];
}
