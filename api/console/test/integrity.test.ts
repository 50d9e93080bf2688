// The browser verifier against the worked examples of docs/integrity.md: if these pass, the
// console checks exactly what the document (and the Rust and Python verifiers) check.

import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, sha256, tag, toHex, utf8 } from "../src/integrity/bytes";
import { jcs, JcsError } from "../src/integrity/jcs";
import { auditPath, leafHash, merkleRoot, nodeHash, rootFromInclusion } from "../src/integrity/merkle";
import type { EventJson, ProofJson, SigningKey } from "../src/integrity/types";
import {
  entryFromEvent,
  entryHash,
  genesis,
  keyIdOf,
  rfc3339ToMs,
  signedBody,
  tenantHeadLeaf,
  verifyEvent,
} from "../src/integrity/verify";

const GENESIS = "6bf66533ab1690656cfd98817428c3f48979733902a3a2854cea8f3424a5eae3";
const CANONICAL =
  '{"classification":{"category":"identity","data_class":"CONFIDENTIAL","labels":["ip_address"],"policy_version":"2026.11.1"},"event":{"action":"user.login","actor":{"id":"tok:email:5c1b0f3ad3b0e6d09a1a2e1e9c9f4e21","type":"USER"},"attributes":{"ip":"203.0.113.0/24"},"changes":[],"event_id":"01JD7Z8Y9X0W1V2K3T4S5R6Q7P","evidence":[],"occurred_at":1763856000123,"outcome":{"status":"SUCCESS"},"resource":{"id":"acct-1","type":"account"},"tenant_id":"acme"},"redactions":[{"label":"ip_address","method":"generalize","path":"attributes.ip"}],"scheme":1,"seq":1,"tenant_id":"acme"}';
const ENTRY_HASH = "839a97117d4e9706cc519b2e232aa4517191c9482fda79696cf8c54f2a92e300";
const ENTRIES_ROOT = "eeee52ee075668c0a1e36d2b84f9d81af347a148507a4fe87a70251dfb4038cd";
const HEADS_ROOT = "71670075d65470a92e60bd507f7de3741120a1356702a4eeb816810dcd853d76";
const CHECKPOINT_GENESIS = "49b94a1946c1ec1eec3f17e5977ff6ae45c40289fdf438d81743411e795ff454";
const PUBLIC_KEY = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const KEY_ID = "fe812c12f3ab4ce6";
const SIGNED_BODY =
  '{"closes_epoch":false,"created_at":1763856001000,"dlq_next_offset":0,"entries_root":"eeee52ee075668c0a1e36d2b84f9d81af347a148507a4fe87a70251dfb4038cd","entry_count":1,"epoch":1,"key_id":"fe812c12f3ab4ce6","number":1,"partition":0,"partitions":1,"prev_checkpoint_hash":"49b94a1946c1ec1eec3f17e5977ff6ae45c40289fdf438d81743411e795ff454","scheme":2,"source_offset":0,"tenant_count":1,"tenant_heads_root":"71670075d65470a92e60bd507f7de3741120a1356702a4eeb816810dcd853d76"}';
const CHECKPOINT_HASH = "ccc72425bcc4e43bdaa1004219741ec3dd3d3bfb9fc38c2fd4f14c1602684ee5";
const SIGNATURE =
  "069698cb3af9b9359ef060c6fc3a8be235bf300c52646201c813508864260b30e189fe58e65a451f26c2ea7bc6b01f3666fb5326cf7c07b29ac38aa4ac94c504";

const hex = (h: string) => {
  const bytes = fromHex(h);
  assert.ok(bytes, `${h} is hex`);
  return bytes;
};

/** The worked example's event, the way GET /v1/events/{id} shows it (nulls included). */
function exampleEvent(): EventJson {
  return {
    event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P",
    tenant_id: "acme",
    occurred_at: "2025-11-23T00:00:00.123Z",
    action: "user.login",
    actor: { id: "tok:email:5c1b0f3ad3b0e6d09a1a2e1e9c9f4e21", type: "USER", display_name: null, authority: null, on_behalf_of: null },
    resource: { type: "account", id: "acct-1", path: null },
    outcome: { status: "SUCCESS", reason_code: null, reason_text: null },
    correlation_id: null,
    causation_id: null,
    trace_id: null,
    span_id: null,
    idempotency_key: null,
    policy_version: null,
    session_id: null,
    evidence: [],
    changes: [],
    attributes: { ip: "203.0.113.0/24" },
    classification: { category: "identity", data_class: "CONFIDENTIAL", labels: ["ip_address"], policy_version: "2026.11.1" },
    redactions: [{ path: "attributes.ip", label: "ip_address", method: "generalize" }],
    integrity: {
      scheme: 1,
      seq: 1,
      prev_hash: GENESIS,
      hash: ENTRY_HASH,
      key_id: KEY_ID,
      layout_epoch: 1,
      sealed_partition: 0,
      sealed_offset: 0,
      sealed_at: "2025-11-23T00:00:00.500Z",
      checkpoint: { layout_epoch: 1, partition: 0, number: 1, checkpoint_hash: CHECKPOINT_HASH },
    },
  };
}

/** The proof GET /v1/integrity/proof would give for it (as the API serializes the checkpoint). */
function exampleProof(): ProofJson {
  return {
    event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P",
    tenant_id: "acme",
    seq: 1,
    entry_hash: ENTRY_HASH,
    entry_inclusion: { leaf_index: 0, tree_size: 1, audit_path: [] },
    tenant_head: { tenant_id: "acme", seq: 1, hash: ENTRY_HASH, leaf_index: 0, tree_size: 1, audit_path: [] },
    checkpoint: {
      partition: 0,
      number: 1,
      scheme: 2,
      prev_checkpoint_hash: CHECKPOINT_GENESIS,
      entries_root: ENTRIES_ROOT,
      entry_count: 1,
      tenant_heads_root: HEADS_ROOT,
      tenant_count: 1,
      source_offset: 0,
      dlq_next_offset: 0,
      created_at: 1763856001000,
      epoch: 1,
      partitions: 1,
      closes_epoch: false,
      key_id: KEY_ID,
      checkpoint_hash: CHECKPOINT_HASH,
      signature: SIGNATURE,
    },
  };
}

const KEYS: SigningKey[] = [{ key_id: KEY_ID, algorithm: "Ed25519", public_key: PUBLIC_KEY, active: true }];

test("genesis of acme", async () => {
  assert.equal(toHex(await genesis("acme")), GENESIS);
});

test("the entry rebuilt from the API's event is the documented canonical entry", async () => {
  const canonical = jcs(entryFromEvent(exampleEvent()));
  assert.equal(canonical, CANONICAL);
  assert.equal(utf8(canonical).length, 576);
  assert.equal(toHex(await entryHash(hex(GENESIS), canonical)), ENTRY_HASH);
});

test("occurred_at: RFC 3339 to milliseconds", () => {
  assert.equal(rfc3339ToMs("2025-11-23T00:00:00.123Z"), 1763856000123);
  assert.equal(rfc3339ToMs("2025-11-23T01:00:00.123+01:00"), 1763856000123);
  assert.equal(rfc3339ToMs("2025-11-23T00:00:00Z"), 1763856000000);
  assert.equal(rfc3339ToMs("2025-11-23T00:00:00.1Z"), 1763856000100);
  assert.equal(rfc3339ToMs("2025-11-23T00:00:00.123000000Z"), 1763856000123);
  assert.equal(rfc3339ToMs("yesterday"), null);
});

test("one-leaf roots of the first checkpoint", async () => {
  assert.equal(toHex(await leafHash(hex(ENTRY_HASH))), ENTRIES_ROOT);
  assert.equal(toHex(await merkleRoot([hex(ENTRY_HASH)])), ENTRIES_ROOT);
  const head = tenantHeadLeaf("acme", 1, ENTRY_HASH);
  assert.equal(
    new TextDecoder().decode(head.slice(tag("sealtrail/v1/tenant-head").length)),
    `{"hash":"${ENTRY_HASH}","seq":1,"tenant_id":"acme"}`,
  );
  assert.equal(toHex(await merkleRoot([head])), HEADS_ROOT);
});

test("checkpoint genesis, key id, signed body, checkpoint hash and signature", async () => {
  assert.equal(toHex(await sha256(tag("sealtrail/v1/checkpoint-genesis"), utf8("0"))), CHECKPOINT_GENESIS);
  assert.equal(await keyIdOf(hex(PUBLIC_KEY)), KEY_ID);
  const proof = exampleProof();
  const body = jcs(signedBody(proof.checkpoint));
  assert.equal(body, SIGNED_BODY);
  const signed = new Uint8Array([...tag("sealtrail/v1/checkpoint"), ...utf8(body)]);
  assert.equal(toHex(await sha256(signed)), CHECKPOINT_HASH);
  const key = await crypto.subtle.importKey("raw", hex(PUBLIC_KEY), { name: "Ed25519" }, false, ["verify"]);
  assert.equal(await crypto.subtle.verify({ name: "Ed25519" }, key, hex(SIGNATURE), signed), true);
});

test("a scheme 1 checkpoint signs no layout fields", () => {
  const checkpoint = { ...exampleProof().checkpoint, scheme: 1 };
  const body = signedBody(checkpoint);
  assert.equal("epoch" in body || "partitions" in body || "closes_epoch" in body, false);
  assert.throws(() => signedBody({ ...checkpoint, scheme: 3 }));
});

test("the epoch link and epoch genesis of the worked example", async () => {
  const link = toHex(await sha256(tag("sealtrail/v2/epoch-link"), hex(CHECKPOINT_HASH)));
  assert.equal(link, "8132a50dacb9c116306760eaeb753b66aabb7a4cf1b9b8d53fd68833b757bb48");
  const next = await sha256(tag("sealtrail/v2/checkpoint-genesis"), utf8(jcs({ epoch: 2, link, partition: 0 })));
  assert.equal(toHex(next), "f73943778beec698b1e870f317b8cd7d65c0865d10c5b23bde2b78f979071414");
});

test("the three-leaf audit path of the more worked examples", async () => {
  const entry2 = await sha256(utf8("entry 2"));
  const entry3 = await sha256(utf8("entry 3"));
  assert.equal(toHex(entry2), "690396b0e760bb1a655c81fe146dd04fdd7ed9686a1916cf90e4c223914ae917");
  assert.equal(toHex(entry3), "40093ead2c5f20a05dfd08796e7f24d7b8ccf0b2345f71d0fdb80c493e331a07");
  const leaves = [hex(ENTRY_HASH), entry2, entry3];
  const [l0, l1, l2] = await Promise.all(leaves.map(leafHash));
  assert.equal(toHex(await nodeHash(l0!, l1!)), "38b836a88e668bae0013764b3519dbdc74e4c2606b260bd7c245275789306348");
  const root = "01cfd0400f15b1a57a902ba758db4040b339016e515779424e00241fef1dd38d";
  assert.equal(toHex(await merkleRoot(leaves)), root);
  const path = await auditPath(leaves, 1);
  assert.deepEqual(path.map(toHex), [ENTRIES_ROOT, "24665e3a9be096bd4b2d43cdc2dbfeeee189a43ef69bb6fc9ca893e0162b97b9"]);
  assert.equal(toHex(l2!), "24665e3a9be096bd4b2d43cdc2dbfeeee189a43ef69bb6fc9ca893e0162b97b9");
  const computed = await rootFromInclusion(entry2, 1, 3, path);
  assert.ok(computed);
  assert.equal(toHex(computed), root);
  // Wrong index, wrong size, short path: no root.
  assert.notEqual(toHex((await rootFromInclusion(entry2, 0, 3, path)) ?? new Uint8Array()), root);
  assert.equal(await rootFromInclusion(entry2, 1, 5, path.slice(0, 1)), null);
  assert.equal(await rootFromInclusion(entry2, 3, 3, path), null);
});

test("every leaf of trees of 1 to 9 leaves verifies against its root", async () => {
  for (let size = 1; size <= 9; size++) {
    const leaves = await Promise.all(Array.from({ length: size }, (_, i) => sha256(utf8(`leaf ${i}`))));
    const root = toHex(await merkleRoot(leaves));
    for (let index = 0; index < size; index++) {
      const computed = await rootFromInclusion(leaves[index]!, index, size, await auditPath(leaves, index));
      assert.equal(computed && toHex(computed), root, `leaf ${index} of ${size}`);
    }
  }
});

test("the two-tenant heads proof", async () => {
  const acme = tenantHeadLeaf("acme", 1, ENTRY_HASH);
  const globex = tenantHeadLeaf("globex", 4, toHex(await sha256(utf8("globex head"))));
  assert.equal(toHex(await leafHash(globex)), "c8da7089b763e7ddd6f08c5d710fdd5ec04f1772a85d6ea966f37f7e7bc0f8cc");
  const root = "925da94774771de9f21477d0666d57723bde5223f9050a9c9d6dc5017751479d";
  assert.equal(toHex(await merkleRoot([acme, globex])), root);
  const computed = await rootFromInclusion(acme, 0, 2, [hex("c8da7089b763e7ddd6f08c5d710fdd5ec04f1772a85d6ea966f37f7e7bc0f8cc")]);
  assert.equal(computed && toHex(computed), root);
});

test("verifyEvent passes every step on the worked example", async () => {
  const result = await verifyEvent({ event: exampleEvent(), proof: exampleProof(), keys: KEYS });
  assert.deepEqual(
    result.steps.map((s) => [s.step, s.result]),
    [
      ["entry-hash", "ok"],
      ["proof-matches", "ok"],
      ["entry-inclusion", "ok"],
      ["tenant-head", "ok"],
      ["checkpoint-hash", "ok"],
      ["signature", "ok"],
    ],
  );
  assert.equal(result.verified, true);
  assert.match(result.steps[5]!.summary, /served by this server/);
  const pinned = await verifyEvent({ event: exampleEvent(), proof: exampleProof(), keys: KEYS, pinnedKey: PUBLIC_KEY.toUpperCase() });
  assert.equal(pinned.verified, true);
  assert.match(pinned.steps[5]!.summary, /you pinned/);
});

async function failedAt(event: EventJson, proof: ProofJson, keys = KEYS, pinnedKey?: string) {
  const result = await verifyEvent({ event, proof, keys, pinnedKey: pinnedKey ?? null });
  assert.equal(result.verified, false);
  const failed = result.steps.filter((s) => s.result === "failed");
  assert.equal(failed.length, 1);
  const at = result.steps.findIndex((s) => s.result === "failed");
  assert.ok(result.steps.slice(at + 1).every((s) => s.result === "skipped"));
  return failed[0]!;
}

test("a changed field fails the entry hash, with expected and found", async () => {
  const event = exampleEvent();
  event.action = "user.logout";
  const step = await failedAt(event, exampleProof());
  assert.equal(step.step, "entry-hash");
  assert.equal(step.expected, ENTRY_HASH);
  assert.notEqual(step.found, ENTRY_HASH);
  const extra = exampleEvent();
  extra.actor.display_name = "Mallory";
  assert.equal((await failedAt(extra, exampleProof())).step, "entry-hash");
});

test("a proof about another event, a bad path, a bad head, a bad body, a bad signature", async () => {
  const other = exampleProof();
  other.seq = 2;
  assert.equal((await failedAt(exampleEvent(), other)).step, "proof-matches");

  const badPath = exampleProof();
  badPath.checkpoint.entries_root = HEADS_ROOT;
  assert.equal((await failedAt(exampleEvent(), badPath)).step, "entry-inclusion");

  const badSize = exampleProof();
  badSize.entry_inclusion.tree_size = 2;
  assert.equal((await failedAt(exampleEvent(), badSize)).step, "entry-inclusion");

  const oldHead = exampleProof();
  oldHead.tenant_head.seq = 0;
  assert.equal((await failedAt(exampleEvent(), oldHead)).step, "tenant-head");

  const badBody = exampleProof();
  badBody.checkpoint.created_at = 1763856001001;
  assert.equal((await failedAt(exampleEvent(), badBody)).step, "checkpoint-hash");

  const badSignature = exampleProof();
  badSignature.checkpoint.signature = SIGNATURE.replace(/^06/, "07");
  assert.equal((await failedAt(exampleEvent(), badSignature)).step, "signature");
});

test("the signing key must be published, match its id, and match the pinned key", async () => {
  assert.equal((await failedAt(exampleEvent(), exampleProof(), [])).step, "signature");
  const wrongId = [{ ...KEYS[0]!, public_key: "00".repeat(32) }];
  assert.match((await failedAt(exampleEvent(), exampleProof(), wrongId)).summary, /key id/);
  const pinnedElsewhere = await failedAt(exampleEvent(), exampleProof(), KEYS, "11".repeat(32));
  assert.equal(pinnedElsewhere.step, "signature");
  assert.match(pinnedElsewhere.summary, /pinned/);
});

test("JCS: member order by UTF-16 code units, RFC 8785 string escapes, integers only", () => {
  assert.equal(jcs({ b: 1, a: [true, false, null], "": "x" }), '{"":"x","a":[true,false,null],"b":1}');
  // U+1F600 is a surrogate pair (D83D DE00), which sorts before U+FFFD by code units.
  assert.equal(jcs({ "\uFFFD": 1, "\u{1F600}": 2 }), '{"\u{1F600}":2,"\uFFFD":1}');
  assert.equal(jcs("a\"\\\b\t\n\f\r\u0001\u001f/\u007fé"), '"a\\"\\\\\\b\\t\\n\\f\\r\\u0001\\u001f/\u007fé"');
  assert.equal(jcs(-0), "0");
  assert.throws(() => jcs(1.5), JcsError);
  assert.throws(() => jcs(2 ** 53), JcsError);
});

// What a malicious or broken server could send so that the page shows one thing and the check
// verifies another: each must fail, and at the step that names the problem.

test("a shown field that the entry hash does not cover fails the entry hash", async () => {
  // Every case still carries a valid chain, proof and signature for the sealed fields.
  const cases: [string, (event: Record<string, any>) => void][] = [
    ["an extra top-level field", (e) => (e["approved_by"] = "the CFO")],
    ["an extra actor field", (e) => (e["actor"]["email"] = "ceo@example.com")],
    ["an extra classification field", (e) => (e["classification"]["note"] = "public")],
    ["an extra integrity field", (e) => (e["integrity"]["verified_by"] = "an auditor")],
    ["an extra covering checkpoint field", (e) => (e["integrity"]["checkpoint"]["witnessed"] = true)],
    ["a non-string attribute", (e) => (e["attributes"]["ip"] = { shown: "203.0.113.0/24" })],
    ["labels as a string", (e) => (e["classification"]["labels"] = "ip_address")],
    ["an entry scheme other than 1", (e) => (e["integrity"]["scheme"] = 2)],
  ];
  for (const [what, change] of cases) {
    const event = exampleEvent() as unknown as Record<string, any>;
    change(event);
    const step = await failedAt(event as unknown as EventJson, exampleProof());
    assert.equal(step.step, "entry-hash", what);
  }
  // An empty evidence list is a value, not an extra field: it still verifies.
  const evidence = exampleEvent();
  evidence.evidence = [];
  assert.equal((await verifyEvent({ event: evidence, proof: exampleProof(), keys: KEYS })).verified, true);
  // An extra field inside an evidence item is refused too.
  const item = exampleEvent() as unknown as Record<string, any>;
  item["evidence"] = [{ kind: "doc", uri: "https://example.com/x", sha256: null, label: "signed by legal" }];
  assert.match((await failedAt(item as unknown as EventJson, exampleProof())).summary, /evidence\.0\.label/);
});

test("an occurred_at whose text names another instant than the sealed one is refused", async () => {
  // Each of these rolls over to the sealed 2025-11-23T00:00:00.123Z in Date.UTC.
  for (const text of [
    "2025-11-22T24:00:00.123Z",
    "2025-11-22T23:59:60.123Z",
    "2025-10-54T00:00:00.123Z",
    "2025-11-23T00:00:00.123+24:00",
    "2025-11-23 00:00:00.123Z",
  ]) {
    assert.equal(rfc3339ToMs(text), null, text);
    const event = exampleEvent();
    event.occurred_at = text;
    assert.equal((await failedAt(event, exampleProof())).step, "entry-hash", text);
  }
  assert.equal(rfc3339ToMs("2024-02-29T00:00:00Z"), Date.UTC(2024, 1, 29));
  assert.equal(rfc3339ToMs("2025-02-29T00:00:00Z"), null);
  assert.equal(rfc3339ToMs("2000-02-29T00:00:00Z"), Date.UTC(2000, 1, 29));
  assert.equal(rfc3339ToMs("1900-02-29T00:00:00Z"), null);
  assert.equal(rfc3339ToMs("0050-01-01T00:00:00Z"), -60589296000000);
});

test("hex is lowercase, whole bytes and hex only; nothing is coerced", async () => {
  assert.deepEqual(fromHex("00ff"), new Uint8Array([0, 255]));
  for (const bad of ["00FF", "0", "0g", " 00", "00 ", "0x00", "+0", "-1"]) assert.equal(fromHex(bad), null, bad);
  assert.equal(fromHex(255 as unknown as string), null);
  // An uppercase recorded hash (the same bytes) is not the recorded text: refused, not lowercased.
  const upper = exampleEvent();
  upper.integrity.hash = ENTRY_HASH.toUpperCase();
  assert.equal((await failedAt(upper, exampleProof())).step, "entry-hash");
  const upperProof = exampleProof();
  upperProof.entry_hash = ENTRY_HASH.toUpperCase();
  assert.equal((await failedAt(exampleEvent(), upperProof)).step, "proof-matches");
  const upperPath = exampleProof();
  upperPath.tenant_head.audit_path = ["AB".repeat(32)];
  upperPath.tenant_head.tree_size = 2;
  upperPath.checkpoint.tenant_count = 2;
  assert.equal((await failedAt(exampleEvent(), upperPath)).step, "tenant-head");
  const upperKey = [{ ...KEYS[0]!, public_key: PUBLIC_KEY.toUpperCase() }];
  assert.equal((await failedAt(exampleEvent(), exampleProof(), upperKey)).step, "signature");
  const upperSignature = exampleProof();
  upperSignature.checkpoint.signature = SIGNATURE.toUpperCase();
  assert.equal((await failedAt(exampleEvent(), upperSignature)).step, "signature");
});

test("the checkpoint the page names must be the one the proof signs", async () => {
  for (const [what, change] of [
    ["number", (e: EventJson) => (e.integrity.checkpoint!.number = 2)],
    ["partition", (e: EventJson) => (e.integrity.checkpoint!.partition = 3)],
    ["epoch", (e: EventJson) => (e.integrity.checkpoint!.layout_epoch = 2)],
    ["sealed partition", (e: EventJson) => (e.integrity.sealed_partition = 3)],
    ["layout epoch", (e: EventJson) => (e.integrity.layout_epoch = 2)],
  ] as const) {
    const event = exampleEvent();
    change(event);
    assert.equal((await failedAt(event, exampleProof())).step, "proof-matches", what);
  }
  // Not covered yet on the event's side: the proof still has to be about it.
  const uncovered = exampleEvent();
  uncovered.integrity.checkpoint = null;
  assert.equal((await verifyEvent({ event: uncovered, proof: exampleProof(), keys: KEYS })).verified, true);
});

test("signed fields of the wrong type are refused before hashing", () => {
  const base = exampleProof().checkpoint;
  for (const [name, value] of [
    ["entry_count", "1"],
    ["closes_epoch", "false"],
    ["created_at", 1.5],
    ["entries_root", ENTRIES_ROOT.toUpperCase()],
    ["key_id", KEY_ID.toUpperCase()],
    ["epoch", 0],
    ["source_offset", -2],
  ] as const) {
    assert.throws(() => signedBody({ ...base, [name]: value }), new RegExp(name), name);
  }
  assert.equal(jcs(signedBody({ ...base, source_offset: -1 })).includes('"source_offset":-1'), true);
});

test("JCS refuses lone surrogates and what is not JSON", async () => {
  assert.throws(() => jcs("a\uD800b"), JcsError);
  assert.throws(() => jcs("\uDC00"), JcsError);
  assert.throws(() => jcs({ "\uD83D": 1 }), JcsError);
  assert.equal(jcs("\u{1F600}"), '"\u{1F600}"');
  assert.throws(() => jcs(undefined as unknown as string), JcsError);
  assert.throws(() => jcs(Number.NaN), JcsError);
  assert.throws(() => jcs(Infinity), JcsError);
  // An event field with a lone surrogate fails the entry hash instead of hashing U+FFFD or \ud800.
  const event = exampleEvent();
  event.resource.id = "acct-1\uD800";
  const step = await failedAt(event, exampleProof());
  assert.equal(step.step, "entry-hash");
  assert.match(step.summary, /surrogate/);
});

test("RFC 9162 inclusion: index and size bounds, path length, non-integers", async () => {
  const leaves = await Promise.all(Array.from({ length: 5 }, (_, i) => sha256(utf8(`leaf ${i}`))));
  const root = toHex(await merkleRoot(leaves));
  const path = await auditPath(leaves, 4);
  const at = async (index: number, size: number, p: Uint8Array[]) => {
    const r = await rootFromInclusion(leaves[4]!, index, size, p);
    return r && toHex(r);
  };
  assert.equal(await at(4, 5, path), root);
  assert.equal(await at(5, 5, path), null, "leaf_index = tree_size");
  assert.equal(await at(9, 5, path), null, "leaf_index > tree_size");
  assert.equal(await at(0, 0, []), null, "empty tree");
  assert.equal(await at(-1, 5, path), null, "negative index");
  assert.equal(await at(4.5, 5, path), null, "fractional index");
  assert.equal(await at(4, 5.5, path), null, "fractional size");
  assert.equal(await at(4, Number.NaN, path), null, "NaN size");
  assert.equal(await at(4, 5, [...path, path[0]!]), null, "path too long");
  assert.equal(await at(4, 5, path.slice(1)), null, "path too short");
  // One leaf: the root is the leaf hash, and only an empty path reaches it.
  const single = await rootFromInclusion(leaves[0]!, 0, 1, []);
  assert.equal(single && toHex(single), toHex(await leafHash(leaves[0]!)));
  assert.equal(await rootFromInclusion(leaves[0]!, 0, 1, [leaves[1]!]), null);
  // The proof's own tree_size must equal the signed count, even when the path fits another size.
  const proof = exampleProof();
  proof.entry_inclusion.leaf_index = 1;
  assert.equal((await failedAt(exampleEvent(), proof)).step, "entry-inclusion");
});
