// The EventScope of holds and exports (query/src/scope.rs): only the filters given are sent.

import { localToRfc3339 } from "../ui/format";

export interface ScopeForm {
  from: string;
  to: string;
  actions: string;
  categories: string;
  actor: string;
  resource_type: string;
  resource_id: string;
  filter: string;
}

export const EMPTY_SCOPE: ScopeForm = {
  from: "",
  to: "",
  actions: "",
  categories: "",
  actor: "",
  resource_type: "",
  resource_id: "",
  filter: "",
};

const list = (text: string) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

export function scopeBody(form: ScopeForm, allowFilter: boolean): Record<string, unknown> {
  const scope: Record<string, unknown> = {};
  const from = localToRfc3339(form.from);
  const to = localToRfc3339(form.to);
  if (from) scope["from"] = from;
  if (to) scope["to"] = to;
  if (list(form.actions).length) scope["actions"] = list(form.actions);
  if (list(form.categories).length) scope["categories"] = list(form.categories);
  for (const name of ["actor", "resource_type", "resource_id"] as const) {
    if (form[name].trim()) scope[name] = form[name].trim();
  }
  if (allowFilter && form.filter.trim()) scope["filter"] = form.filter.trim();
  return scope;
}

/** A scope as one line of text, for lists. */
export function describeScope(scope: unknown): string {
  if (!scope || typeof scope !== "object") return "everything";
  const parts: string[] = [];
  for (const [name, value] of Object.entries(scope as Record<string, unknown>)) {
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    parts.push(`${name}: ${Array.isArray(value) ? value.join(", ") : String(value)}`);
  }
  return parts.length ? parts.join(" · ") : "everything";
}
