import type { EventJson } from "../integrity/types";
import { toCsv } from "../ui/csv";
import { saveBlob } from "../ui/download";

const COLUMNS: [string, (e: EventJson) => unknown][] = [
  ["occurred_at", (e) => e.occurred_at],
  ["event_id", (e) => e.event_id],
  ["seq", (e) => e.integrity?.seq],
  ["actor_id", (e) => e.actor.id],
  ["actor_type", (e) => e.actor.type],
  ["action", (e) => e.action],
  ["resource_type", (e) => e.resource.type],
  ["resource_id", (e) => e.resource.id],
  ["outcome", (e) => e.outcome.status],
  ["reason_code", (e) => e.outcome.reason_code],
  ["category", (e) => e.classification.category],
  ["data_class", (e) => e.classification.data_class],
  ["correlation_id", (e) => e.correlation_id],
  ["causation_id", (e) => e.causation_id],
  ["hash", (e) => e.integrity?.hash],
];

export function eventsCsv(events: EventJson[]): string {
  return toCsv(
    COLUMNS.map(([name]) => name),
    events.map((e) => COLUMNS.map(([, get]) => get(e))),
  );
}

export function eventsNdjson(events: EventJson[]): string {
  return events.map((e) => JSON.stringify(e)).join("\n") + (events.length ? "\n" : "");
}

export function downloadEvents(events: EventJson[], format: "csv" | "ndjson") {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  if (format === "csv") {
    saveBlob(new Blob([eventsCsv(events)], { type: "text/csv;charset=utf-8" }), `sealtrail-events-${stamp}.csv`);
  } else {
    saveBlob(new Blob([eventsNdjson(events)], { type: "application/x-ndjson" }), `sealtrail-events-${stamp}.ndjson`);
  }
}
