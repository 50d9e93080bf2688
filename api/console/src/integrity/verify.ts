// The browser-side check of one event against docs/integrity.md: its entry hash, the inclusion
// proof the API hands out, and the checkpoint's hash and Ed25519 signature. Pure: no DOM, no
// fetch; everything it needs is passed in.

import { digestFromHex, equalBytes, fromHex, sha256, toHex, utf8 } from "./bytes";
import { ed25519Verify, keyIdOf, signedBytes, tenantHeadLeaf } from "./checkpoint";
import { entryFromEvent, entryHash, eventShapeProblem, genesis, isCount, isObject, isText } from "./entry";
import { jcs } from "./jcs";
import { rootFromInclusion } from "./merkle";

// The pure parts, for the tests and other callers.
export { ed25519Verify, keyIdOf, signedBody, signedBytes, tenantHeadLeaf } from "./checkpoint";
export { entryFromEvent, entryHash, eventShapeProblem, genesis, rfc3339ToMs } from "./entry";
import type { EventJson, ProofJson, SigningKey } from "./types";

export const STEPS = [
  "entry-hash",
  "proof-matches",
  "entry-inclusion",
  "tenant-head",
  "checkpoint-hash",
  "signature",
] as const;
export type StepName = (typeof STEPS)[number];

export interface Step {
  step: StepName;
  result: "ok" | "failed" | "skipped";
  /** What was checked, as a sentence. */
  summary: string;
  expected?: string;
  found?: string;
}

export interface Verification {
  verified: boolean;
  failedStep: StepName | null;
  steps: Step[];
}

export interface VerifyInput {
  event: EventJson;
  proof: ProofJson;
  keys: SigningKey[];
  /** A public key (hex) the user trusts; when set, the checkpoint must be signed with it. */
  pinnedKey?: string | null;
}

type Outcome = { ok: true; summary: string } | { ok: false; summary: string; expected?: string; found?: string };

const ok = (summary: string): Outcome => ({ ok: true, summary });
const fail = (summary: string, expected?: unknown, found?: unknown): Outcome => ({
  ok: false,
  summary,
  ...(expected === undefined ? {} : { expected: String(expected) }),
  ...(found === undefined ? {} : { found: String(found) }),
});

function paths(hexes: unknown): Uint8Array<ArrayBuffer>[] | null {
  if (!Array.isArray(hexes)) return null;
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (const hex of hexes) {
    const bytes = digestFromHex(hex);
    if (!bytes) return null;
    out.push(bytes);
  }
  return out;
}

async function checkEntry({ event }: VerifyInput): Promise<Outcome> {
  const shape = eventShapeProblem(event);
  if (shape) return fail(`The event as shown cannot be what was sealed: ${shape}.`);
  const recorded = digestFromHex(event.integrity.hash);
  const prev = digestFromHex(event.integrity.prev_hash);
  if (!recorded || !prev) return fail("The event's recorded hash and prev_hash must be 32-byte lowercase hex digests.");
  if (event.integrity.seq === 1) {
    const first = toHex(await genesis(event.tenant_id));
    if (first !== event.integrity.prev_hash) {
      return fail(`Sequence 1 must link to the genesis hash of tenant ${event.tenant_id}.`, first, event.integrity.prev_hash);
    }
  }
  const canonical = jcs(entryFromEvent(event));
  const computed = toHex(await entryHash(prev, canonical));
  if (computed !== event.integrity.hash) {
    return fail(
      `Rebuilt the entry of sequence ${event.integrity.seq} from the fields shown (${utf8(canonical).length} canonical bytes); its hash with the previous hash does not match the recorded hash, so a field shown differs from what was sealed.`,
      event.integrity.hash,
      computed,
    );
  }
  return ok(
    `Rebuilt the entry of sequence ${event.integrity.seq} from the fields shown (${utf8(canonical).length} canonical bytes); SHA-256 with the previous hash ${short(event.integrity.prev_hash)} gives the recorded hash ${short(computed)}.`,
  );
}

async function checkProofMatches({ event, proof }: VerifyInput): Promise<Outcome> {
  const cp = proof.checkpoint;
  if (!isObject(cp) || !isObject(proof.entry_inclusion) || !isObject(proof.tenant_head)) {
    return fail("The proof lacks its checkpoint, entry inclusion or tenant head.");
  }
  // A scheme 1 checkpoint belongs to epoch 1 and signs no epoch; a scheme 2 one signs it.
  const signedEpoch = cp.scheme === 1 ? 1 : cp["epoch"];
  const pairs: [string, unknown, unknown][] = [
    ["event id", event.event_id, proof.event_id],
    ["tenant", event.tenant_id, proof.tenant_id],
    ["head tenant", event.tenant_id, proof.tenant_head.tenant_id],
    ["sequence", event.integrity.seq, proof.seq],
    ["entry hash", event.integrity.hash, proof.entry_hash],
  ];
  // What the page shows of where the event is sealed must be what the signed checkpoint says.
  if (event.integrity.layout_epoch != null) pairs.push(["layout epoch", event.integrity.layout_epoch, signedEpoch]);
  if (event.integrity.sealed_partition != null) pairs.push(["sealed partition", event.integrity.sealed_partition, cp.partition]);
  const covering = event.integrity.checkpoint;
  if (covering) {
    pairs.push(
      ["covering checkpoint hash", covering.checkpoint_hash, cp.checkpoint_hash],
      ["covering checkpoint number", covering.number, cp.number],
      ["covering checkpoint partition", covering.partition, cp.partition],
      ["covering checkpoint epoch", covering.layout_epoch, signedEpoch],
    );
  }
  for (const [what, expected, found] of pairs) {
    if (expected !== found) return fail(`The proof is not about this event: its ${what} differs.`, expected, found);
  }
  return ok(
    `The proof is about this event: same event id, tenant ${event.tenant_id}, sequence ${event.integrity.seq} and entry hash.`,
  );
}

async function checkEntryInclusion({ proof }: VerifyInput): Promise<Outcome> {
  const inclusion = proof.entry_inclusion;
  const cp = proof.checkpoint;
  if (inclusion.tree_size !== cp.entry_count) {
    return fail("The entries tree of the proof must have the checkpoint's entry_count leaves.", cp.entry_count, inclusion.tree_size);
  }
  const hash = digestFromHex(proof.entry_hash);
  const root = digestFromHex(cp.entries_root);
  const path = paths(inclusion.audit_path);
  if (!hash || !root || !path) return fail("The entry hash, entries_root and audit path must be 32-byte lowercase hex digests.");
  const computed = await rootFromInclusion(hash, inclusion.leaf_index, inclusion.tree_size, path);
  if (!computed || !equalBytes(computed, root)) {
    return fail(
      `The audit path of leaf ${inclusion.leaf_index} in a tree of ${inclusion.tree_size} does not lead to the signed entries_root.`,
      cp.entries_root,
      computed ? toHex(computed) : "a path of the wrong length for this tree",
    );
  }
  return ok(
    `The event's hash is leaf ${inclusion.leaf_index} of the ${inclusion.tree_size} entries of checkpoint ${cp.number} (partition ${cp.partition}): its ${path.length}-step audit path leads to entries_root ${short(cp.entries_root)}.`,
  );
}

async function checkTenantHead({ event, proof }: VerifyInput): Promise<Outcome> {
  const head = proof.tenant_head;
  const cp = proof.checkpoint;
  if (head.tree_size !== cp.tenant_count) {
    return fail("The tenant heads tree of the proof must have the checkpoint's tenant_count leaves.", cp.tenant_count, head.tree_size);
  }
  if (!isCount(head.seq) || !isText(head.tenant_id) || !(head.seq >= event.integrity.seq)) {
    return fail("The signed head of the tenant must be at or after the event's sequence.", `>= ${event.integrity.seq}`, head.seq);
  }
  if (head.seq === event.integrity.seq && head.hash !== event.integrity.hash) {
    return fail("The signed head is at the event's sequence, so it must carry the event's hash.", event.integrity.hash, head.hash);
  }
  const root = digestFromHex(cp.tenant_heads_root);
  const path = paths(head.audit_path);
  if (!root || !path || !digestFromHex(head.hash)) return fail("The head hash, tenant_heads_root and audit path must be 32-byte lowercase hex digests.");
  const leaf = tenantHeadLeaf(head.tenant_id, head.seq, head.hash);
  const computed = await rootFromInclusion(leaf, head.leaf_index, head.tree_size, path);
  if (!computed || !equalBytes(computed, root)) {
    return fail(
      `The head of ${head.tenant_id} (sequence ${head.seq}) does not lead to the signed tenant_heads_root.`,
      cp.tenant_heads_root,
      computed ? toHex(computed) : "a path of the wrong length for this tree",
    );
  }
  return ok(
    `The tenant's signed head (sequence ${head.seq}, at or after this event's ${event.integrity.seq}) is leaf ${head.leaf_index} of ${head.tree_size} in tenant_heads_root ${short(cp.tenant_heads_root)}.`,
  );
}

async function checkCheckpointHash({ proof }: VerifyInput): Promise<Outcome> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = signedBytes(proof.checkpoint);
  } catch (error) {
    return fail(`The checkpoint's signed body cannot be rebuilt: ${(error as Error).message}.`);
  }
  const computed = toHex(await sha256(bytes));
  if (computed !== proof.checkpoint.checkpoint_hash) {
    return fail("The checkpoint's signed fields do not hash to its checkpoint_hash.", proof.checkpoint.checkpoint_hash, computed);
  }
  return ok(
    `Rebuilt the signed body of checkpoint ${proof.checkpoint.number} (scheme ${proof.checkpoint.scheme}); it hashes to checkpoint_hash ${short(computed)}.`,
  );
}

async function checkSignature({ proof, keys, pinnedKey }: VerifyInput): Promise<Outcome> {
  const keyId = proof.checkpoint.key_id;
  if (!Array.isArray(keys)) return fail("The server's list of signing keys is not a list.");
  const key = keys.find((k) => isObject(k) && k.key_id === keyId);
  if (!key) return fail(`No signing key with id ${keyId} is published by this server.`, keyId, keys.map((k) => k.key_id).join(", ") || "no keys");
  const raw = fromHex(key.public_key);
  if (!raw || raw.length !== 32) return fail(`Key ${keyId} is not a 32-byte raw Ed25519 public key.`, "64 hex characters", key.public_key);
  const derived = await keyIdOf(raw);
  if (derived !== keyId) return fail("A key id must be the first 16 hex characters of SHA-256 of the public key.", keyId, derived);
  // The pin is what the user typed: that text is normalized; what the server sends is not.
  const pinned = pinnedKey?.trim().toLowerCase();
  if (pinned && pinned !== key.public_key) {
    return fail("The checkpoint is signed with a key other than the one you pinned.", pinned, key.public_key);
  }
  const signature = fromHex(proof.checkpoint.signature);
  if (!signature || signature.length !== 64) return fail("The signature must be 64 bytes of hex.", "128 hex characters", proof.checkpoint.signature);
  let valid: boolean;
  try {
    valid = await ed25519Verify(raw, signature, signedBytes(proof.checkpoint));
  } catch (error) {
    return fail(`This browser could not check an Ed25519 signature: ${(error as Error).message}`);
  }
  if (!valid) return fail(`The Ed25519 signature does not verify with key ${keyId}.`, "a valid signature", proof.checkpoint.signature);
  const source = pinned
    ? "the public key you pinned"
    : "a key served by this server (pin a trusted key to check it independently)";
  return ok(`The Ed25519 signature of checkpoint ${proof.checkpoint.number} verifies with key ${keyId}, ${source}.`);
}

const CHECKS: Record<StepName, (input: VerifyInput) => Promise<Outcome>> = {
  "entry-hash": checkEntry,
  "proof-matches": checkProofMatches,
  "entry-inclusion": checkEntryInclusion,
  "tenant-head": checkTenantHead,
  "checkpoint-hash": checkCheckpointHash,
  signature: checkSignature,
};

/** Runs every step in order and stops at the first failure; later steps are marked skipped. */
export async function verifyEvent(input: VerifyInput): Promise<Verification> {
  const steps: Step[] = [];
  let failedStep: StepName | null = null;
  for (const step of STEPS) {
    if (failedStep) {
      steps.push({ step, result: "skipped", summary: "Not checked: an earlier step failed." });
      continue;
    }
    let outcome: Outcome;
    try {
      outcome = await CHECKS[step](input);
    } catch (error) {
      outcome = fail(`The check could not run: ${(error as Error).message}`);
    }
    if (outcome.ok) {
      steps.push({ step, result: "ok", summary: outcome.summary });
    } else {
      failedStep = step;
      steps.push({
        step,
        result: "failed",
        summary: outcome.summary,
        ...(outcome.expected === undefined ? {} : { expected: outcome.expected }),
        ...(outcome.found === undefined ? {} : { found: outcome.found }),
      });
    }
  }
  return { verified: failedStep === null, failedStep, steps };
}

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex;
}
