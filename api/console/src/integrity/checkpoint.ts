// A checkpoint's signed body and signature, and the tenant-head leaf (docs/integrity.md,
// "Checkpoints").

import { concat, digestFromHex, sha256, tag, toHex, utf8 } from "./bytes";
import { jcs, type Json } from "./jcs";
import { isCount } from "./entry";

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

