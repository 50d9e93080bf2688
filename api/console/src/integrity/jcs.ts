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
  if (typeof value === "string") return string(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  if (typeof value !== "object") throw new JcsError(`a ${typeof value} is not JSON`);
  // JavaScript compares strings by UTF-16 code units: the order RFC 8785 asks for.
  const names = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const members: string[] = [];
  for (const name of names) {
    const member = value[name];
    if (member === undefined) continue;
    members.push(`${string(name)}:${jcs(member)}`);
  }
  return `{${members.join(",")}}`;
}

/**
 * A string as RFC 8785 writes it. A lone surrogate is refused: RFC 8785 takes I-JSON, whose
 * strings are Unicode text, and no sealed string (Rust's are UTF-8) can hold one; JSON.stringify
 * would write it as a `\udxxx` escape, and TextEncoder as U+FFFD, neither of which was sealed.
 */
function string(text: string): string {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)) {
    throw new JcsError("a string holds a lone UTF-16 surrogate, which is not Unicode text");
  }
  return JSON.stringify(text);
}
