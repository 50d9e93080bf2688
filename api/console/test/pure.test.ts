// The other pure helpers the screens rely on: CSV escaping, the SSE parser, the position of a
// refused query, and the per-path diff of a change.

import assert from "node:assert/strict";
import { test } from "node:test";

import { objectDiff } from "../src/event/flatten";
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
