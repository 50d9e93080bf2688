// The JSON shapes the integrity checks read: an event as GET /v1/events/{id} answers it, a proof
// as GET /v1/integrity/proof answers it, and the signing keys of GET /v1/integrity/keys.

export type Optional = string | null | undefined;

export interface EventJson {
  event_id: string;
  tenant_id: string;
  occurred_at: string | number;
  action: string;
  actor: { id: string; type: string; display_name?: Optional; authority?: Optional; on_behalf_of?: Optional };
  resource: { type: string; id: string; path?: Optional };
  outcome: { status: string; reason_code?: Optional; reason_text?: Optional };
  correlation_id?: Optional;
  causation_id?: Optional;
  trace_id?: Optional;
  span_id?: Optional;
  idempotency_key?: Optional;
  policy_version?: Optional;
  session_id?: Optional;
  evidence: { kind: string; uri: string; sha256?: Optional }[];
  changes: { field: string; before?: Optional; after?: Optional }[];
  attributes: Record<string, string>;
  classification: { category: string; data_class: string; labels: string[]; policy_version: string };
  redactions: { path: string; label: string; method: string }[];
  integrity: EventIntegrity;
}

export interface EventIntegrity {
  scheme: number;
  seq: number;
  prev_hash: string;
  hash: string;
  key_id?: string;
  layout_epoch?: number;
  sealed_partition?: number;
  sealed_offset?: number;
  sealed_at?: string;
  checkpoint: null | { layout_epoch: number; partition: number; number: number; checkpoint_hash: string };
}

export interface InclusionPath {
  leaf_index: number;
  tree_size: number;
  audit_path: string[];
}

export interface ProofJson {
  event_id: string;
  tenant_id: string;
  seq: number;
  entry_hash: string;
  entry_inclusion: InclusionPath;
  tenant_head: InclusionPath & { tenant_id: string; seq: number; hash: string };
  checkpoint: Record<string, unknown> & {
    scheme: number;
    key_id: string;
    checkpoint_hash: string;
    signature: string;
    entries_root: string;
    entry_count: number;
    tenant_heads_root: string;
    tenant_count: number;
    partition: number;
    number: number;
  };
}

export interface SigningKey {
  key_id: string;
  algorithm: string;
  public_key: string;
  active?: boolean;
}
