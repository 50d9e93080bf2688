// The entry of a sealed event rebuilt from the event as the API shows it (docs/integrity.md, "The
// entry"): the shape is checked first, since a member the hash does not cover must not be shown
// as verified; times and hex are parsed strictly.

import { sha256, tag, utf8 } from "./bytes";
import { type Json } from "./jcs";
import type { EventJson } from "./types";

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

export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
export const isText = (v: unknown): v is string => typeof v === "string";
export const isOptionalText = (v: unknown) => v === undefined || v === null || typeof v === "string";
export const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

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

