// Dotted paths for an event's fields (`actor.id`, `attributes.ip`, `evidence.0.uri`), the same
// paths redactions name; and the per-path diff of a change whose values are JSON objects.

export type Scalar = string | number | boolean | null;

export function flatten(value: unknown, prefix = "", out: [string, Scalar | string[]][] = []): [string, Scalar | string[]][] {
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "string")) {
      out.push([prefix, value as string[]]);
    } else if (value.length === 0) {
      out.push([prefix, []]);
    } else {
      value.forEach((item, i) => flatten(item, prefix ? `${prefix}.${i}` : String(i), out));
    }
  } else if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0 && prefix) out.push([prefix, null]);
    for (const [name, member] of entries) flatten(member, prefix ? `${prefix}.${name}` : name, out);
  } else if (prefix) {
    out.push([prefix, value as Scalar]);
  }
  return out;
}

export interface PathChange {
  path: string;
  kind: "added" | "removed" | "changed";
  before?: string;
  after?: string;
}

function asObject(text: string | null | undefined): Record<string, unknown> | null {
  if (text === null || text === undefined) return null;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/**
 * The per-path differences when both sides (or the one present) are JSON objects; null when a side
 * is not an object, and the change is then shown as before → after.
 */
export function objectDiff(before: string | null | undefined, after: string | null | undefined): PathChange[] | null {
  const b = asObject(before);
  const a = asObject(after);
  if ((before != null && !b) || (after != null && !a) || (!b && !a)) return null;
  const left = new Map(flatten(b ?? {}).map(([p, v]) => [p, show(v)]));
  const right = new Map(flatten(a ?? {}).map(([p, v]) => [p, show(v)]));
  const paths = [...new Set([...left.keys(), ...right.keys()])].sort();
  const changes: PathChange[] = [];
  for (const path of paths) {
    const l = left.get(path);
    const r = right.get(path);
    if (l === undefined && r !== undefined) changes.push({ path, kind: "added", after: r });
    else if (r === undefined && l !== undefined) changes.push({ path, kind: "removed", before: l });
    else if (l !== r) changes.push({ path, kind: "changed", before: l!, after: r! });
  }
  return changes;
}
