import { useState } from "preact/hooks";

import { api, ApiError, messageOf } from "../api";
import { toCsv } from "../ui/csv";
import { saveBlob } from "../ui/download";
import { formatCount } from "../ui/format";
import { StatusLine } from "../ui/StatusLine";
import { highlight, parsePosition } from "./position";

interface QueryResult {
  meta: { name: string; type: string }[];
  data: Record<string, unknown>[];
  rows: number;
  statistics?: { elapsed?: number; rows_read?: number; bytes_read?: number };
  rows_before_limit_at_least?: number;
}

type Run =
  | { kind: "idle" }
  | { kind: "running" }
  | { kind: "done"; result: QueryResult }
  | { kind: "refused"; message: string; at: string | null; sql: string }
  | { kind: "error"; message: string };

const MAX_SHOWN = 2000;
const EXAMPLE = "SELECT category, outcome, count() AS events\nFROM events\nGROUP BY category, outcome\nORDER BY events DESC\nLIMIT 20";

const cell = (v: unknown) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

export function Workbench() {
  const [sql, setSql] = useState(EXAMPLE);
  const [run, setRun] = useState<Run>({ kind: "idle" });

  const execute = async () => {
    if (!sql.trim() || run.kind === "running") return;
    const text = sql;
    setRun({ kind: "running" });
    try {
      const result = await api<QueryResult>("/v1/query", { method: "POST", body: { sql: text } });
      setRun({ kind: "done", result });
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        setRun({ kind: "refused", message: error.message, at: error.at ?? null, sql: text });
      } else {
        setRun({ kind: "error", message: messageOf(error) });
      }
    }
  };

  const downloadCsv = (result: QueryResult) => {
    const names = result.meta.map((m) => m.name);
    const csv = toCsv(names, result.data.map((row) => names.map((n) => cell(row[n]))));
    saveBlob(new Blob([csv], { type: "text/csv;charset=utf-8" }), "sealtrail-query.csv");
  };

  return (
    <div class="screen workbench">
      <h1>SQL workbench</h1>
      <section class="card" aria-labelledby="sql-title">
        <h2 id="sql-title" class="visually-hidden">Query</h2>
        <form
          class="stack"
          onSubmit={(e) => {
            e.preventDefault();
            void execute();
          }}
        >
          <label for="sql">SQL over your tenant's events (read only; the tenant condition is added for you)</label>
          <textarea
            id="sql"
            class="mono sql"
            rows={8}
            spellcheck={false}
            value={sql}
            onInput={(e) => setSql(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void execute();
              }
            }}
            aria-describedby="sql-hint"
          />
          <span id="sql-hint" class="hint">
            Ctrl+Enter (⌘+Enter) runs the query.
          </span>
          <div class="actions">
            <button id="run-query" type="submit" class="primary" disabled={run.kind === "running"}>
              {run.kind === "running" ? "Running…" : "Run query"}
            </button>
            {run.kind === "done" && (
              <button id="download-query-csv" type="button" onClick={() => downloadCsv(run.result)}>
                Download CSV
              </button>
            )}
          </div>
        </form>
      </section>
      {run.kind === "running" && <StatusLine testId="query-state" state="loading" message="Running the query…" />}
      {run.kind === "error" && <StatusLine testId="query-state" state="error" message={run.message} />}
      {run.kind === "refused" && <Refusal message={run.message} at={run.at} sql={run.sql} />}
      {run.kind === "done" && <Result result={run.result} />}
    </div>
  );
}

function Refusal({ message, at, sql }: { message: string; at: string | null; sql: string }) {
  const position = parsePosition(at);
  const marked = position ? highlight(sql, position) : null;
  return (
    <section class="card refusal" data-testid="query-refusal" role="alert" aria-labelledby="refusal-title">
      <h2 id="refusal-title">The query was refused</h2>
      <p class="refusal-message">{message}</p>
      {at && (
        <p class="small muted">
          At: <span class="mono">{at}</span>
        </p>
      )}
      {marked && (
        <pre class="sql-echo" aria-label="Your query, with the offending part marked">
          <code>
            {marked.before}
            <mark>{marked.marked || " "}</mark>
            {marked.after}
          </code>
        </pre>
      )}
    </section>
  );
}

function Result({ result }: { result: QueryResult }) {
  const names = result.meta.map((m) => m.name);
  const shown = result.data.slice(0, MAX_SHOWN);
  const stats = result.statistics;
  return (
    <section class="card" aria-labelledby="result-title">
      <h2 id="result-title">Result</h2>
      <p class="muted small" role="status" data-testid="query-state">
        {formatCount(result.rows)} row{result.rows === 1 ? "" : "s"}
        {stats?.elapsed !== undefined && ` in ${(stats.elapsed * 1000).toFixed(1)} ms`}
        {stats?.rows_read !== undefined && `, ${formatCount(stats.rows_read)} rows read`}
        {result.data.length > MAX_SHOWN && `; the first ${formatCount(MAX_SHOWN)} are shown, the CSV holds all`}
      </p>
      {result.rows === 0 ? (
        <StatusLine testId="query-empty" state="empty" message="The query returned no rows" />
      ) : null}
      <div class="table-scroll" role="region" aria-label="Query result" tabIndex={0}>
        <table class="data-table" data-testid="query-result">
          <thead>
            <tr>
              {result.meta.map((m) => (
                <th scope="col" key={m.name} title={m.type}>
                  {m.name}
                  <span class="col-type">{m.type}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row, i) => (
              <tr key={i}>
                {names.map((n) => (
                  <td key={n} class="mono">
                    {cell(row[n])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
