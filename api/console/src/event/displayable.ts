// The minimum an event needs for the screens to draw it without throwing: the objects and lists
// they read members of, and the strings they call string methods on. Whether what is drawn was
// sealed is the integrity panel's question (src/integrity/verify.ts), not this one.

import type { EventJson } from "../integrity/types";

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

export function isDisplayable(value: unknown): value is EventJson {
  if (!isObject(value)) return false;
  const { actor, resource, outcome, classification, integrity } = value;
  return (
    typeof value["event_id"] === "string" &&
    value["event_id"] !== "" &&
    isObject(actor) &&
    isObject(resource) &&
    isObject(outcome) &&
    typeof outcome["status"] === "string" &&
    isObject(classification) &&
    Array.isArray(classification["labels"]) &&
    Array.isArray(value["changes"]) &&
    Array.isArray(value["evidence"]) &&
    Array.isArray(value["redactions"]) &&
    value["redactions"].every(isObject) &&
    value["changes"].every(isObject) &&
    isObject(value["attributes"]) &&
    isObject(integrity)
  );
}
