// Byte helpers shared by the integrity checks. Plain Uint8Array in, plain Uint8Array out, so the
// module runs the same in the browser and under node's test runner.

const encoder = new TextEncoder();

export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text) as Uint8Array<ArrayBuffer>;
}

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A domain tag: the ASCII tag followed by one zero byte (docs/integrity.md, "Notation"). */
export function tag(name: string): Uint8Array<ArrayBuffer> {
  return concat(utf8(name), new Uint8Array([0]));
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * Parses lowercase hex (docs/integrity.md, "Notation": hashes and signatures appear as lowercase
 * hexadecimal); null for anything else: odd length, non-hex, uppercase or a non-string. Nothing is
 * coerced, so the text a check compares is exactly the text that was parsed.
 */
export function fromHex(hex: unknown): Uint8Array<ArrayBuffer> | null {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A 32-byte digest from hex, or null: the checks compare digests, never free-form strings. */
export function digestFromHex(hex: unknown): Uint8Array<ArrayBuffer> | null {
  if (typeof hex !== "string" || hex.length !== 64) return null;
  return fromHex(hex);
}

export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array<ArrayBuffer>> {
  const digest = await crypto.subtle.digest("SHA-256", concat(...parts));
  return new Uint8Array(digest);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
