// The other pure helpers the screens rely on: CSV escaping, the SSE parser, the position of a
// refused query, and the per-path diff of a change.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, segment } from "../src/api";
import { providerUrl, tokenNonce } from "../src/auth/oidc";
import { isDisplayable } from "../src/event/displayable";
import { objectDiff } from "../src/event/flatten";
import { proofFailure } from "../src/event/IntegrityPanel";
import { sequenceOf } from "../src/timeline/liveTail";
import { filtersFromQuery, filtersKey } from "../src/timeline/filters";
import { SseParser } from "../src/timeline/sse";
import { csvCell, toCsv } from "../src/ui/csv";
import { highlight, parsePosition } from "../src/workbench/position";

test("CSV quotes and guards against formula injection", () => {
  assert.equal(csvCell('say "hi", ok'), '"say ""hi"", ok"');
  assert.equal(csvCell("=1+1"), "'=1+1");
  assert.equal(csvCell("+cmd"), "'+cmd");
  assert.equal(csvCell("-2"), "'-2");
  assert.equal(csvCell("@SUM(A1)"), "'@SUM(A1)");
  assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  assert.equal(csvCell(null), "");
  assert.equal(toCsv(["a", "b"], [["1", "line\nbreak"]]), 'a,b\r\n1,"line\nbreak"\r\n');
});

test("SSE: events across chunks, CRLF, comments, multi-line data", () => {
  const parser = new SseParser();
  const messages = [
    ...parser.feed('event: ready\r\ndata: {"after_seq": 4}\r'),
    ...parser.feed("\n\r\n: keep-alive\n\nevent: event\nid: 5\ndata: {\"a\":"),
    ...parser.feed("1}\ndata: more\n\n"),
  ];
  assert.deepEqual(messages, [
    { event: "ready", data: '{"after_seq": 4}', id: null },
    { event: "event", data: '{"a":1}\nmore', id: "5" },
  ]);
});

test("a refusal's position marks the offending token", () => {
  const position = parsePosition("line 2, column 6: bad");
  assert.deepEqual(position, { line: 2, column: 6, token: "bad" });
  assert.deepEqual(highlight("SELECT *\nFROM bad WHERE 1", position!), { before: "SELECT *\nFROM ", marked: "bad", after: " WHERE 1" });
  // Columns count characters, not UTF-16 units.
  assert.deepEqual(highlight("SELECT '😀', x\\y", { line: 1, column: 14, token: null }), {
    before: "SELECT '😀', x",
    marked: "\\",
    after: "y",
  });
  assert.equal(parsePosition("sql"), null);
  assert.deepEqual(parsePosition("line 1, column 3"), { line: 1, column: 3, token: null });
});

test("a change of JSON objects is diffed per path", () => {
  assert.deepEqual(objectDiff('{"a":1,"b":{"c":"x"},"gone":true}', '{"a":2,"b":{"c":"x","d":"new"}}'), [
    { path: "a", kind: "changed", before: "1", after: "2" },
    { path: "b.d", kind: "added", after: "new" },
    { path: "gone", kind: "removed", before: "true" },
  ]);
  assert.equal(objectDiff("old", "new"), null);
  assert.deepEqual(objectDiff(null, '{"a":1}'), [{ path: "a", kind: "added", after: "1" }]);
});

test("filters come from the hash query, and only known ones", () => {
  const filters = filtersFromQuery(new URLSearchParams("actor=u1&outcome=denied&evil=1&causation_id=e1"));
  assert.deepEqual(filters, { actor: "u1", outcome: "denied", causation_id: "e1" });
  assert.equal(filtersKey({ b: "2", a: "1" }), "a=1&b=2");
});

test("CSV: formulas behind spaces, control characters and full-width signs are guarded too", () => {
  for (const cell of [" =1+1", "\u00a0=1", "\u0000=1", "\t=1", "\tplain", "\rx", "\nx", "\uFF1D1+1", "\uFF0Bcmd", "\uFF0D2", "\uFF20SUM(A1)", "\u3000=1"]) {
    assert.ok(csvCell(cell).replace(/^"/, "").startsWith("'"), JSON.stringify(cell));
  }
  for (const cell of ["plain", "1-2", "a=b", "x@example.com", ""]) assert.equal(csvCell(cell), cell);
  // The header row (a query's column names) is guarded as well.
  assert.equal(toCsv(["=cmd"], []), "'=cmd\r\n");
});

test("SSE: an over-long line or message is dropped, memory stays bounded, parsing goes on", () => {
  const parser = new SseParser({ maxLine: 16, maxMessage: 24 });
  const out = [
    // A line over the limit, split across chunks that never end it for a while.
    ...parser.feed("event: event\ndata: " + "x".repeat(10)),
    ...parser.feed("y".repeat(100)),
    ...parser.feed("z".repeat(100) + "\n\n"),
    ...parser.feed("data: ok\n\n"),
    // Lines under the limit that add up to a message over it.
    ...parser.feed("data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n"),
    // A whole over-long line inside one chunk.
    ...parser.feed(`data: ${"w".repeat(40)}\n\ndata: after\n\n`),
  ];
  assert.deepEqual(out, [
    { event: "message", data: "ok", id: null },
    { event: "message", data: "after", id: null },
  ]);
  assert.equal(parser.dropped, 3);
  assert.ok((parser as unknown as { buffer: string }).buffer.length <= 16);
});

test("SSE: malformed input, empty chunks, a CR at a chunk's end, ids with NUL", () => {
  const parser = new SseParser();
  const out = [
    ...parser.feed(""),
    ...parser.feed("data:a\r"),
    ...parser.feed(""),
    ...parser.feed("\nid: 7\0\nid: 8\n:comment\nnonsense\nevent\ndata\n\n"),
    ...parser.feed("\n\n\r\r\n"),
  ];
  assert.deepEqual(out, [{ event: "message", data: "a\n", id: "8" }]);
});

test("live tail sequence numbers are exact decimal integers", () => {
  assert.equal(sequenceOf("42"), 42);
  assert.equal(sequenceOf(7), 7);
  for (const bad of ["1e20", "-1", "0x10", " 5", "5.0", "99999999999999999", "", -3, 1.5, null]) {
    assert.equal(sequenceOf(bad), null, String(bad));
  }
});

test("a server that admits an integrity mismatch fails the panel; 409 and network errors do not", () => {
  const mismatch = proofFailure(new ApiError(500, "integrity_mismatch", "entries root differs"));
  assert.equal(mismatch.kind, "mismatch");
  assert.equal(proofFailure(new ApiError(409, "not_yet_covered", "later")).kind, "unavailable");
  assert.equal(proofFailure(new ApiError(409, "incomplete_projection", "later")).kind, "unavailable");
  assert.equal(proofFailure(new ApiError(0, "network", "offline")).kind, "unavailable");
  assert.equal(proofFailure(new ApiError(500, "internal", "boom")).kind, "unavailable");
  assert.equal(proofFailure(new TypeError("x")).kind, "unavailable");
});

test("path segments: encoded, and never a dot segment", () => {
  assert.equal(segment("a/b?c#d"), "a%2Fb%3Fc%23d");
  for (const bad of ["", ".", ".."]) assert.throws(() => segment(bad), ApiError);
  assert.equal(segment("..."), "...");
});

test("OIDC endpoints are https (or http on this machine), never script or credentials", () => {
  assert.equal(providerUrl("https://idp.example/authorize", "x").host, "idp.example");
  assert.equal(providerUrl("http://127.0.0.1:8080/token", "x").port, "8080");
  for (const bad of ["javascript:alert(1)", "data:text/html,x", "http://idp.example/authorize", "https://user:pw@idp.example/", "/relative", "ftp://idp.example/"]) {
    assert.throws(() => providerUrl(bad, "x"), Error, bad);
  }
});

test("events the screens cannot draw are recognised", () => {
  const good = {
    event_id: "e1",
    actor: { id: "a", type: "USER" },
    resource: { type: "t", id: "i" },
    outcome: { status: "SUCCESS" },
    classification: { labels: [] },
    changes: [],
    evidence: [],
    redactions: [],
    attributes: {},
    integrity: { seq: 1 },
  };
  assert.equal(isDisplayable(good), true);
  assert.equal(isDisplayable({ ...good, outcome: { status: 1 } }), false);
  assert.equal(isDisplayable({ ...good, actor: null }), false);
  assert.equal(isDisplayable({ ...good, changes: "x" }), false);
  assert.equal(isDisplayable(null), false);
  assert.equal(isDisplayable("event"), false);
});

test("the nonce of an ID token is read from its payload, and nothing else passes for one", () => {
  const encode = (value: unknown) =>
    Buffer.from(JSON.stringify(value)).toString("base64url");
  const token = `${encode({ alg: "ES256" })}.${encode({ sub: "carol", nonce: "n-1_ä" })}.sig`;
  assert.equal(tokenNonce(token), "n-1_ä");
  assert.equal(tokenNonce(`${encode({ alg: "ES256" })}.${encode({ nonce: 5 })}.sig`), null);
  assert.equal(tokenNonce("not-a-jwt"), null);
  assert.equal(tokenNonce("a.%%%.c"), null);
});
