// The browser-side check of one event against docs/integrity.md: its entry hash, the inclusion
// proof the API hands out, and the checkpoint's hash and Ed25519 signature. Pure: no DOM, no
// fetch; everything it needs is passed in.

import { concat, digestFromHex, equalBytes, fromHex, sha256, tag, toHex, utf8 } from "./bytes";
import { jcs, type Json } from "./jcs";
import { rootFromInclusion } from "./merkle";
import type { EventJson, ProofJson, SigningKey } from "./types";

export const STEPS = [
  "entry-hash",
  "proof-matches",
  "entry-inclusion",
  "tenant-head",
  "checkpoint-hash",
  "signature",
] as const;
export type StepName = (typeof STEPS)[number];

export interface Step {
  step: StepName;
  result: "ok" | "failed" | "skipped";
  /** What was checked, as a sentence. */
  summary: string;
  expected?: string;
  found?: string;
}

export interface Verification {
  verified: boolean;
  failedStep: StepName | null;
  steps: Step[];
}

export interface VerifyInput {
  event: EventJson;
  proof: ProofJson;
  keys: SigningKey[];
  /** A public key (hex) the user trusts; when set, the checkpoint must be signed with it. */
  pinnedKey?: string | null;
}

type Outcome = { ok: true; summary: string } | { ok: false; summary: string; expected?: string; found?: string };

const ok = (summary: string): Outcome => ({ ok: true, summary });
const fail = (summary: string, expected?: unknown, found?: unknown): Outcome => ({
  ok: false,
  summary,
  ...(expected === undefined ? {} : { expected: String(expected) }),
  ...(found === undefined ? {} : { found: String(found) }),
});

/**
 * Milliseconds since the epoch of an RFC 3339 time; null when it is not one. Strict: a field out of
 * range (February 30, hour 24, second 60, offset +24:00) is refused rather than rolled over, since
 * the text shown would then name another instant than the one sealed.
 */
export function rfc3339ToMs(text: unknown): number | null {
  if (typeof text === "number") return Number.isSafeInteger(text) ? text : null;
  if (typeof text !== "string") return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac = "", zone = "Z"] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeap(year) ? 1 : 0);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return null;
  // Sealed times are whole milliseconds; digits beyond them would not survive the round trip.
  if (/[1-9]/.test(frac.slice(3))) return null;
  const ms = Number(frac.slice(0, 3).padEnd(3, "0"));
  let at = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (year < 100) {
    const date = new Date(at);
    date.setUTCFullYear(year);
    at = date.getTime();
  }
  if (zone !== "Z" && zone !== "z") {
    const offsetHours = Number(zone.slice(1, 3));
    const offsetMinutes = Number(zone.slice(4, 6));
    if (offsetHours > 23 || offsetMinutes > 59) return null;
    const sign = zone.startsWith("-") ? -1 : 1;
    at -= sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  return Number.isSafeInteger(at) ? at : null;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

// What GET /v1/events/{id} may hold, member by member (api/src/routes/event_json.rs). The entry
// hash covers every member outside `integrity` and nothing else, so a member outside these lists
// would be shown on the page without being sealed: the check refuses it instead.
const OPTIONAL_TEXT = ["correlation_id", "causation_id", "trace_id", "span_id", "idempotency_key", "policy_version", "session_id"] as const;
const EVENT_MEMBERS = new Set([
  "event_id", "tenant_id", "occurred_at", "action", "actor", "resource", "outcome", ...OPTIONAL_TEXT,
  "evidence", "changes", "attributes", "classification", "redactions", "integrity",
]);
const INTEGRITY_MEMBERS = new Set([
  "scheme", "seq", "prev_hash", "hash", "key_id", "layout_epoch", "sealed_partition", "sealed_offset", "sealed_at", "checkpoint",
]);
const COVERING_MEMBERS = new Set(["layout_epoch", "partition", "number", "checkpoint_hash"]);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === "string";
const isOptionalText = (v: unknown) => v === undefined || v === null || typeof v === "string";
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * An object with only the `required` text members, the `optional` text ones and the `others`
 * (checked by the caller); the first problem, or null.
 */
function record(value: unknown, where: string, required: string[], optional: string[] = [], others: string[] = []): string | null {
  if (!isObject(value)) return `${where} is not an object`;
  for (const name of Object.keys(value)) {
    if (!required.includes(name) && !optional.includes(name) && !others.includes(name)) {
      return `${where}.${name} is not part of the sealed entry`;
    }
  }
  for (const name of required) if (!isText(value[name])) return `${where}.${name} is not a string`;
  for (const name of optional) if (!isOptionalText(value[name])) return `${where}.${name} is not a string`;
  return null;
}

/**
 * The first way the event differs from the shape the entry is rebuilt from, or null: every shown
 * member must be one the entry hash covers (or integrity metadata), with the type it is sealed with.
 */
export function eventShapeProblem(event: unknown): string | null {
  if (!isObject(event)) return "the event is not an object";
  for (const name of Object.keys(event)) {
    if (!EVENT_MEMBERS.has(name)) return `${name} is not part of the sealed entry`;
  }
  for (const name of ["event_id", "tenant_id", "action"]) if (!isText(event[name])) return `${name} is not a string`;
  if (rfc3339ToMs(event["occurred_at"]) === null) return "occurred_at is not a valid RFC 3339 time in whole milliseconds";
  const problem =
    record(event["actor"], "actor", ["id", "type"], ["display_name", "authority", "on_behalf_of"]) ??
    record(event["resource"], "resource", ["type", "id"], ["path"]) ??
    record(event["outcome"], "outcome", ["status"], ["reason_code", "reason_text"]) ??
    record(event["classification"], "classification", ["category", "data_class", "policy_version"], [], ["labels"]);
  if (problem) return problem;
  for (const name of OPTIONAL_TEXT) if (!isOptionalText(event[name])) return `${name} is not a string`;
  const labels = (event["classification"] as Record<string, unknown>)["labels"];
  if (!Array.isArray(labels) || !labels.every(isText)) return "classification.labels is not a list of strings";
  for (const [name, required, optional] of [
    ["evidence", ["kind", "uri"], ["sha256"]],
    ["changes", ["field"], ["before", "after"]],
    ["redactions", ["path", "label", "method"], []],
  ] as const) {
    const items = event[name];
    if (!Array.isArray(items)) return `${name} is not a list`;
    for (let i = 0; i < items.length; i++) {
      const itemProblem = record(items[i], `${name}.${i}`, [...required], [...optional]);
      if (itemProblem) return itemProblem;
    }
  }
  const attributes = event["attributes"];
  if (!isObject(attributes) || !Object.values(attributes).every(isText)) return "attributes is not an object of strings";
  const integrity = event["integrity"];
  if (!isObject(integrity)) return "integrity is not an object";
  for (const name of Object.keys(integrity)) {
    if (!INTEGRITY_MEMBERS.has(name)) return `integrity.${name} is not integrity metadata this console checks`;
  }
  if (integrity["scheme"] !== undefined && integrity["scheme"] !== 1) return "integrity.scheme is not 1, the only entry format";
  if (!isCount(integrity["seq"]) || integrity["seq"] < 1) return "integrity.seq is not a sequence number";
  const covering = integrity["checkpoint"];
  if (covering !== null && covering !== undefined) {
    if (!isObject(covering)) return "integrity.checkpoint is not an object";
    for (const name of Object.keys(covering)) {
      if (!COVERING_MEMBERS.has(name)) return `integrity.checkpoint.${name} is not integrity metadata this console checks`;
    }
  }
  return null;
}

/** Copies `name` into `into` only when it is set: absent optional fields are never hashed as null. */
function optional(into: { [name: string]: Json }, name: string, value: string | null | undefined) {
  if (value !== null && value !== undefined) into[name] = value;
}

/** The entry of docs/integrity.md ("The entry") rebuilt from the event as the API shows it. */
export function entryFromEvent(event: EventJson): { [name: string]: Json } {
  const occurredAt = rfc3339ToMs(event.occurred_at);
  if (occurredAt === null) throw new Error(`occurred_at ${String(event.occurred_at)} is not an RFC 3339 time`);
  const actor: { [name: string]: Json } = { id: event.actor.id, type: event.actor.type };
  optional(actor, "display_name", event.actor.display_name);
  optional(actor, "authority", event.actor.authority);
  optional(actor, "on_behalf_of", event.actor.on_behalf_of);
  const resource: { [name: string]: Json } = { type: event.resource.type, id: event.resource.id };
  optional(resource, "path", event.resource.path);
  const outcome: { [name: string]: Json } = { status: event.outcome.status };
  optional(outcome, "reason_code", event.outcome.reason_code);
  optional(outcome, "reason_text", event.outcome.reason_text);
  const body: { [name: string]: Json } = {
    event_id: event.event_id,
    tenant_id: event.tenant_id,
    occurred_at: occurredAt,
    action: event.action,
    actor,
    resource,
    outcome,
    evidence: event.evidence.map((e) => {
      const item: { [name: string]: Json } = { kind: e.kind, uri: e.uri };
      optional(item, "sha256", e.sha256);
      return item;
    }),
    changes: event.changes.map((c) => {
      const item: { [name: string]: Json } = { field: c.field };
      optional(item, "before", c.before);
      optional(item, "after", c.after);
      return item;
    }),
    attributes: { ...event.attributes },
  };
  for (const name of OPTIONAL_TEXT) optional(body, name, event[name]);
  return {
    scheme: 1,
    tenant_id: event.tenant_id,
    seq: event.integrity.seq,
    event: body,
    classification: {
      category: event.classification.category,
      data_class: event.classification.data_class,
      labels: [...event.classification.labels],
      policy_version: event.classification.policy_version,
    },
    redactions: event.redactions.map((r) => ({ path: r.path, label: r.label, method: r.method })),
  };
}

export function genesis(tenantId: string): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(tag("sealtrail/v1/genesis"), utf8(tenantId));
}

export function entryHash(prevHash: Uint8Array, canonical: string): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(tag("sealtrail/v1/entry"), prevHash, utf8(canonical));
}

export function tenantHeadLeaf(tenantId: string, seq: number, hashHex: string): Uint8Array<ArrayBuffer> {
  return concat(tag("sealtrail/v1/tenant-head"), utf8(jcs({ tenant_id: tenantId, seq, hash: hashHex })));
}

const SIGNED_V1 = [
  "scheme",
  "partition",
  "number",
  "prev_checkpoint_hash",
  "entries_root",
  "entry_count",
  "tenant_heads_root",
  "tenant_count",
  "source_offset",
  "dlq_next_offset",
  "created_at",
  "key_id",
] as const;
const SIGNED_V2 = [...SIGNED_V1, "epoch", "partitions", "closes_epoch"] as const;

const COUNT = { what: "a non-negative integer", test: isCount };
const DIGEST = { what: "64 lowercase hex characters", test: (v: unknown) => digestFromHex(v) !== null };
const SIGNED_TYPES: Record<(typeof SIGNED_V2)[number], { what: string; test: (v: unknown) => boolean }> = {
  scheme: COUNT,
  partition: COUNT,
  number: COUNT,
  prev_checkpoint_hash: DIGEST,
  entries_root: DIGEST,
  entry_count: COUNT,
  tenant_heads_root: DIGEST,
  tenant_count: COUNT,
  source_offset: { what: "an integer of -1 or more", test: (v) => Number.isSafeInteger(v) && (v as number) >= -1 },
  dlq_next_offset: COUNT,
  created_at: { what: "an integer", test: (v) => Number.isSafeInteger(v) },
  key_id: { what: "16 lowercase hex characters", test: (v) => typeof v === "string" && /^[0-9a-f]{16}$/.test(v) },
  epoch: { what: "a positive integer", test: (v) => isCount(v) && v >= 1 },
  partitions: { what: "a positive integer", test: (v) => isCount(v) && v >= 1 },
  closes_epoch: { what: "a boolean", test: (v) => typeof v === "boolean" },
};

/**
 * The signed body of a checkpoint: exactly the fields docs/integrity.md lists for its scheme.
 * Anything else the record carries (hash, signature, cosignatures, heads) is not signed.
 */
export function signedBody(checkpoint: Record<string, unknown>): { [name: string]: Json } {
  const scheme = checkpoint["scheme"];
  const fields = scheme === 1 ? SIGNED_V1 : scheme === 2 ? SIGNED_V2 : null;
  if (!fields) throw new Error(`checkpoint scheme ${String(scheme)} is not one this verifier knows (1 or 2)`);
  const body: { [name: string]: Json } = {};
  for (const name of fields) {
    const value = checkpoint[name];
    if (value === undefined || value === null) throw new Error(`the checkpoint lacks its signed field ${name}`);
    const expected = SIGNED_TYPES[name];
    if (!expected.test(value)) throw new Error(`the checkpoint's signed field ${name} is not ${expected.what}`);
    body[name] = value as Json;
  }
  return body;
}

export function signedBytes(checkpoint: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  return concat(tag("sealtrail/v1/checkpoint"), utf8(jcs(signedBody(checkpoint))));
}

/** key_id = the first 16 hex characters of SHA-256(raw public key). */
export async function keyIdOf(publicKey: Uint8Array): Promise<string> {
  return toHex(await sha256(publicKey)).slice(0, 16);
}

export async function ed25519Verify(publicKey: Uint8Array<ArrayBuffer>, signature: Uint8Array<ArrayBuffer>, message: Uint8Array<ArrayBuffer>): Promise<boolean> {
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

function paths(hexes: unknown): Uint8Array<ArrayBuffer>[] | null {
  if (!Array.isArray(hexes)) return null;
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (const hex of hexes) {
    const bytes = digestFromHex(hex);
    if (!bytes) return null;
    out.push(bytes);
  }
  return out;
}

async function checkEntry({ event }: VerifyInput): Promise<Outcome> {
  const shape = eventShapeProblem(event);
  if (shape) return fail(`The event as shown cannot be what was sealed: ${shape}.`);
  const recorded = digestFromHex(event.integrity.hash);
  const prev = digestFromHex(event.integrity.prev_hash);
  if (!recorded || !prev) return fail("The event's recorded hash and prev_hash must be 32-byte lowercase hex digests.");
  if (event.integrity.seq === 1) {
    const first = toHex(await genesis(event.tenant_id));
    if (first !== event.integrity.prev_hash) {
      return fail(`Sequence 1 must link to the genesis hash of tenant ${event.tenant_id}.`, first, event.integrity.prev_hash);
    }
  }
  const canonical = jcs(entryFromEvent(event));
  const computed = toHex(await entryHash(prev, canonical));
  if (computed !== event.integrity.hash) {
    return fail(
      `Rebuilt the entry of sequence ${event.integrity.seq} from the fields shown (${utf8(canonical).length} canonical bytes); its hash with the previous hash does not match the recorded hash, so a field shown differs from what was sealed.`,
      event.integrity.hash,
      computed,
    );
  }
  return ok(
    `Rebuilt the entry of sequence ${event.integrity.seq} from the fields shown (${utf8(canonical).length} canonical bytes); SHA-256 with the previous hash ${short(event.integrity.prev_hash)} gives the recorded hash ${short(computed)}.`,
  );
}

async function checkProofMatches({ event, proof }: VerifyInput): Promise<Outcome> {
  const cp = proof.checkpoint;
  if (!isObject(cp) || !isObject(proof.entry_inclusion) || !isObject(proof.tenant_head)) {
    return fail("The proof lacks its checkpoint, entry inclusion or tenant head.");
  }
  // A scheme 1 checkpoint belongs to epoch 1 and signs no epoch; a scheme 2 one signs it.
  const signedEpoch = cp.scheme === 1 ? 1 : cp["epoch"];
  const pairs: [string, unknown, unknown][] = [
    ["event id", event.event_id, proof.event_id],
    ["tenant", event.tenant_id, proof.tenant_id],
    ["head tenant", event.tenant_id, proof.tenant_head.tenant_id],
    ["sequence", event.integrity.seq, proof.seq],
    ["entry hash", event.integrity.hash, proof.entry_hash],
  ];
  // What the page shows of where the event is sealed must be what the signed checkpoint says.
  if (event.integrity.layout_epoch != null) pairs.push(["layout epoch", event.integrity.layout_epoch, signedEpoch]);
  if (event.integrity.sealed_partition != null) pairs.push(["sealed partition", event.integrity.sealed_partition, cp.partition]);
  const covering = event.integrity.checkpoint;
  if (covering) {
    pairs.push(
      ["covering checkpoint hash", covering.checkpoint_hash, cp.checkpoint_hash],
      ["covering checkpoint number", covering.number, cp.number],
      ["covering checkpoint partition", covering.partition, cp.partition],
      ["covering checkpoint epoch", covering.layout_epoch, signedEpoch],
    );
  }
  for (const [what, expected, found] of pairs) {
    if (expected !== found) return fail(`The proof is not about this event: its ${what} differs.`, expected, found);
  }
  return ok(
    `The proof is about this event: same event id, tenant ${event.tenant_id}, sequence ${event.integrity.seq} and entry hash.`,
  );
}

async function checkEntryInclusion({ proof }: VerifyInput): Promise<Outcome> {
  const inclusion = proof.entry_inclusion;
  const cp = proof.checkpoint;
  if (inclusion.tree_size !== cp.entry_count) {
    return fail("The entries tree of the proof must have the checkpoint's entry_count leaves.", cp.entry_count, inclusion.tree_size);
  }
  const hash = digestFromHex(proof.entry_hash);
  const root = digestFromHex(cp.entries_root);
  const path = paths(inclusion.audit_path);
  if (!hash || !root || !path) return fail("The entry hash, entries_root and audit path must be 32-byte lowercase hex digests.");
  const computed = await rootFromInclusion(hash, inclusion.leaf_index, inclusion.tree_size, path);
  if (!computed || !equalBytes(computed, root)) {
    return fail(
      `The audit path of leaf ${inclusion.leaf_index} in a tree of ${inclusion.tree_size} does not lead to the signed entries_root.`,
      cp.entries_root,
      computed ? toHex(computed) : "a path of the wrong length for this tree",
    );
  }
  return ok(
    `The event's hash is leaf ${inclusion.leaf_index} of the ${inclusion.tree_size} entries of checkpoint ${cp.number} (partition ${cp.partition}): its ${path.length}-step audit path leads to entries_root ${short(cp.entries_root)}.`,
  );
}

async function checkTenantHead({ event, proof }: VerifyInput): Promise<Outcome> {
  const head = proof.tenant_head;
  const cp = proof.checkpoint;
  if (head.tree_size !== cp.tenant_count) {
    return fail("The tenant heads tree of the proof must have the checkpoint's tenant_count leaves.", cp.tenant_count, head.tree_size);
  }
  if (!isCount(head.seq) || !isText(head.tenant_id) || !(head.seq >= event.integrity.seq)) {
    return fail("The signed head of the tenant must be at or after the event's sequence.", `>= ${event.integrity.seq}`, head.seq);
  }
  if (head.seq === event.integrity.seq && head.hash !== event.integrity.hash) {
    return fail("The signed head is at the event's sequence, so it must carry the event's hash.", event.integrity.hash, head.hash);
  }
  const root = digestFromHex(cp.tenant_heads_root);
  const path = paths(head.audit_path);
  if (!root || !path || !digestFromHex(head.hash)) return fail("The head hash, tenant_heads_root and audit path must be 32-byte lowercase hex digests.");
  const leaf = tenantHeadLeaf(head.tenant_id, head.seq, head.hash);
  const computed = await rootFromInclusion(leaf, head.leaf_index, head.tree_size, path);
  if (!computed || !equalBytes(computed, root)) {
    return fail(
      `The head of ${head.tenant_id} (sequence ${head.seq}) does not lead to the signed tenant_heads_root.`,
      cp.tenant_heads_root,
      computed ? toHex(computed) : "a path of the wrong length for this tree",
    );
  }
  return ok(
    `The tenant's signed head (sequence ${head.seq}, at or after this event's ${event.integrity.seq}) is leaf ${head.leaf_index} of ${head.tree_size} in tenant_heads_root ${short(cp.tenant_heads_root)}.`,
  );
}

async function checkCheckpointHash({ proof }: VerifyInput): Promise<Outcome> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = signedBytes(proof.checkpoint);
  } catch (error) {
    return fail(`The checkpoint's signed body cannot be rebuilt: ${(error as Error).message}.`);
  }
  const computed = toHex(await sha256(bytes));
  if (computed !== proof.checkpoint.checkpoint_hash) {
    return fail("The checkpoint's signed fields do not hash to its checkpoint_hash.", proof.checkpoint.checkpoint_hash, computed);
  }
  return ok(
    `Rebuilt the signed body of checkpoint ${proof.checkpoint.number} (scheme ${proof.checkpoint.scheme}); it hashes to checkpoint_hash ${short(computed)}.`,
  );
}

async function checkSignature({ proof, keys, pinnedKey }: VerifyInput): Promise<Outcome> {
  const keyId = proof.checkpoint.key_id;
  if (!Array.isArray(keys)) return fail("The server's list of signing keys is not a list.");
  const key = keys.find((k) => isObject(k) && k.key_id === keyId);
  if (!key) return fail(`No signing key with id ${keyId} is published by this server.`, keyId, keys.map((k) => k.key_id).join(", ") || "no keys");
  const raw = fromHex(key.public_key);
  if (!raw || raw.length !== 32) return fail(`Key ${keyId} is not a 32-byte raw Ed25519 public key.`, "64 hex characters", key.public_key);
  const derived = await keyIdOf(raw);
  if (derived !== keyId) return fail("A key id must be the first 16 hex characters of SHA-256 of the public key.", keyId, derived);
  // The pin is what the user typed: that text is normalized; what the server sends is not.
  const pinned = pinnedKey?.trim().toLowerCase();
  if (pinned && pinned !== key.public_key) {
    return fail("The checkpoint is signed with a key other than the one you pinned.", pinned, key.public_key);
  }
  const signature = fromHex(proof.checkpoint.signature);
  if (!signature || signature.length !== 64) return fail("The signature must be 64 bytes of hex.", "128 hex characters", proof.checkpoint.signature);
  let valid: boolean;
  try {
    valid = await ed25519Verify(raw, signature, signedBytes(proof.checkpoint));
  } catch (error) {
    return fail(`This browser could not check an Ed25519 signature: ${(error as Error).message}`);
  }
  if (!valid) return fail(`The Ed25519 signature does not verify with key ${keyId}.`, "a valid signature", proof.checkpoint.signature);
  const source = pinned
    ? "the public key you pinned"
    : "a key served by this server (pin a trusted key to check it independently)";
  return ok(`The Ed25519 signature of checkpoint ${proof.checkpoint.number} verifies with key ${keyId}, ${source}.`);
}

const CHECKS: Record<StepName, (input: VerifyInput) => Promise<Outcome>> = {
  "entry-hash": checkEntry,
  "proof-matches": checkProofMatches,
  "entry-inclusion": checkEntryInclusion,
  "tenant-head": checkTenantHead,
  "checkpoint-hash": checkCheckpointHash,
  signature: checkSignature,
};

/** Runs every step in order and stops at the first failure; later steps are marked skipped. */
export async function verifyEvent(input: VerifyInput): Promise<Verification> {
  const steps: Step[] = [];
  let failedStep: StepName | null = null;
  for (const step of STEPS) {
    if (failedStep) {
      steps.push({ step, result: "skipped", summary: "Not checked: an earlier step failed." });
      continue;
    }
    let outcome: Outcome;
    try {
      outcome = await CHECKS[step](input);
    } catch (error) {
      outcome = fail(`The check could not run: ${(error as Error).message}`);
    }
    if (outcome.ok) {
      steps.push({ step, result: "ok", summary: outcome.summary });
    } else {
      failedStep = step;
      steps.push({
        step,
        result: "failed",
        summary: outcome.summary,
        ...(outcome.expected === undefined ? {} : { expected: outcome.expected }),
        ...(outcome.found === undefined ? {} : { found: outcome.found }),
      });
    }
  }
  return { verified: failedStep === null, failedStep, steps };
}

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex;
}
