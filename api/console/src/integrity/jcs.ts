// RFC 8785 JSON Canonicalization Scheme, for the JSON sealtrail hashes: objects, arrays, strings,
// booleans and integers below 2^53 (docs/integrity.md, "Notation"). Anything else is refused
// rather than encoded approximately, since a wrong byte only shows up as a hash mismatch.

export type Json = null | boolean | number | string | Json[] | { [name: string]: Json };

export class JcsError extends Error {}

export function jcs(value: Json): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new JcsError(`${value} is not an integer below 2^53; sealtrail hashes only such numbers`);
    }
    // `-0` has to be written as 0, which String() already does.
    return String(value);
  }
  // JSON.stringify escapes strings exactly as RFC 8785 prescribes (it is the ECMAScript rule).
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  // JavaScript compares strings by UTF-16 code units: the order RFC 8785 asks for.
  const names = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const members: string[] = [];
  for (const name of names) {
    const member = value[name];
    if (member === undefined) continue;
    members.push(`${JSON.stringify(name)}:${jcs(member)}`);
  }
  return `{${members.join(",")}}`;
}
