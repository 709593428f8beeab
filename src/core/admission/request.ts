// AdmissionReview v1 request fields the decisions read (admission.k8s.io/v1).

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest<T = unknown> {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo: UserInfo;
  object?: T;
  oldObject?: T;
  dryRun?: boolean;
  /** CreateOptions or UpdateOptions; `fieldManager` names the tool that asked. */
  options?: { fieldManager?: string; dryRun?: string[]; [key: string]: unknown };
}
