// The timeline's filters: one list drives the form, the hash query (so a view can be linked) and
// the query string of /v1/events, /v1/events/per-day and /v1/events/stream.

export interface FilterField {
  /** The API's parameter name, also used in the hash query. */
  name: string;
  id: string;
  label: string;
  kind: "text" | "datetime" | "select";
  options?: { value: string; label: string }[];
  hint?: string;
}

export const FILTER_FIELDS: FilterField[] = [
  { name: "from", id: "filter-from", label: "From", kind: "datetime", hint: "your local time" },
  { name: "to", id: "filter-to", label: "To (before)", kind: "datetime", hint: "your local time" },
  { name: "actor", id: "filter-actor", label: "Actor id", kind: "text" },
  { name: "action", id: "filter-action", label: "Action", kind: "text" },
  { name: "action_prefix", id: "filter-action-prefix", label: "Action prefix", kind: "text", hint: "billing. finds billing.refund.posted" },
  { name: "category", id: "filter-category", label: "Category", kind: "text" },
  { name: "resource_type", id: "filter-resource-type", label: "Resource type", kind: "text" },
  { name: "resource_id", id: "filter-resource-id", label: "Resource id", kind: "text" },
  {
    name: "outcome",
    id: "filter-outcome",
    label: "Outcome",
    kind: "select",
    options: [
      { value: "", label: "Any" },
      { value: "success", label: "Success" },
      { value: "failure", label: "Failure" },
      { value: "denied", label: "Denied" },
    ],
  },
  { name: "correlation_id", id: "filter-correlation-id", label: "Correlation id", kind: "text" },
  {
    name: "data_class",
    id: "filter-data-class",
    label: "Data class",
    kind: "select",
    options: [
      { value: "", label: "Any" },
      { value: "public", label: "Public" },
      { value: "internal", label: "Internal" },
      { value: "confidential", label: "Confidential" },
      { value: "restricted", label: "Restricted" },
    ],
  },
  { name: "label", id: "filter-label", label: "Sensitivity label", kind: "text", hint: "such as email" },
  { name: "match_value", id: "filter-match-value", label: "Find events about this value", kind: "text", hint: "a raw value, matched where it was tokenized" },
  { name: "match_label", id: "filter-match-label", label: "Kind of value", kind: "text", hint: "email, phone, ..." },
];

/** Parameters that are not form fields but still filter (links from the event page). */
const EXTRA = ["causation_id"];

export type Filters = Record<string, string>;

export function filtersFromQuery(query: URLSearchParams): Filters {
  const filters: Filters = {};
  for (const name of [...FILTER_FIELDS.map((f) => f.name), ...EXTRA]) {
    const value = query.get(name);
    if (value) filters[name] = value;
  }
  return filters;
}

/** A stable text of the filters, to tell when the view has to reload. */
export function filtersKey(filters: Filters): string {
  return new URLSearchParams(Object.entries(filters).sort(([a], [b]) => (a < b ? -1 : 1))).toString();
}
