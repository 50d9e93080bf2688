import { useEffect, useRef, useState } from "preact/hooks";

import { api, isAbort, messageOf, request, segment } from "../api";
import { saveBlob } from "../ui/download";
import { formatBytes, formatCount, formatTime } from "../ui/format";
import { StatusLine } from "../ui/StatusLine";
import { ScopeFields } from "./ScopeFields";
import { describeScope, EMPTY_SCOPE, scopeBody, type ScopeForm } from "./scope";

export interface ExportStatus {
  export_id: string;
  tenant_id: string;
  state: "queued" | "running" | "done" | "failed";
  scope: unknown;
  requested_by: string;
  requested_at: number;
  updated_at: number;
  progress?: { done: number; total: number };
  result?: {
    event_count: number;
    omitted_count: number;
    unsigned_tail: number;
    files: number;
    bytes: number;
    checkpoints: number;
    key_id: string;
    manifest_sha256: string;
  };
  error?: string;
}

const POLL_MS = 2000;
const isFinal = (s: ExportStatus) => s.state === "done" || s.state === "failed";

type Load = { kind: "loading" } | { kind: "ready" } | { kind: "error"; message: string };

export function Exports() {
  const [exports, setExports] = useState<ExportStatus[]>([]);
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    api<{ exports: ExportStatus[] }>("/v1/exports", { signal: abort.signal })
      .then((answer) => {
        setExports(answer.exports);
        setLoad({ kind: "ready" });
      })
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [reload]);

  // Poll each unfinished export until it is done or failed.
  const pending = exports.filter((e) => !isFinal(e)).map((e) => e.export_id);
  const pendingKey = pending.join(",");
  const exportsRef = useRef(exports);
  exportsRef.current = exports;
  useEffect(() => {
    if (!pending.length) return;
    const abort = new AbortController();
    const timer = setInterval(() => {
      for (const id of pending) {
        (async () => api<ExportStatus>(`/v1/exports/${segment(id)}`, { signal: abort.signal }))()
          .then((status) => setExports((current) => current.map((e) => (e.export_id === id ? status : e))))
          .catch(() => undefined);
      }
    }, POLL_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [pendingKey]);

  return (
    <section class="card" aria-labelledby="exports-title" data-testid="exports">
      <h2 id="exports-title">eDiscovery exports</h2>
      <p class="muted small">
        An export is a signed tar (manifest.json, manifest.sig, events files); check it offline with{" "}
        <code>sealtrail verify-export FILE.tar --public-key KEY</code>.
      </p>
      <ExportForm onRequested={(status) => setExports((current) => [status, ...current.filter((e) => e.export_id !== status.export_id)])} />
      {load.kind === "loading" && <StatusLine testId="exports-state" state="loading" message="Loading exports…" />}
      {load.kind === "error" && <StatusLine testId="exports-state" state="error" message={load.message} onRetry={() => setReload((n) => n + 1)} />}
      {load.kind === "ready" && exports.length === 0 && <StatusLine testId="exports-state" state="empty" message="No exports yet" />}
      {exports.length > 0 && (
        <div class="table-scroll" role="region" aria-label="Exports" tabIndex={0}>
          <table class="data-table" data-testid="exports-table">
            <thead>
              <tr>
                <th scope="col">Export</th>
                <th scope="col">State</th>
                <th scope="col">Scope</th>
                <th scope="col">Manifest</th>
                <th scope="col">Artifact</th>
              </tr>
            </thead>
            <tbody>
              {exports.map((status) => (
                <ExportRow key={status.export_id} status={status} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function ExportRow({ status }: { status: ExportStatus }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const response = await request(`/v1/exports/${segment(status.export_id)}/artifact`, {
        headers: { Accept: "application/x-tar" },
      });
      saveBlob(await response.blob(), `${status.export_id}.tar`);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };
  const progress = status.progress;
  const percent = progress && progress.total > 0 ? Math.floor((progress.done / progress.total) * 100) : null;
  const r = status.result;
  return (
    <tr data-export-id={status.export_id} data-state={status.state}>
      <td>
        <span class="mono">{status.export_id}</span>
        <div class="small muted">
          by {status.requested_by} at {formatTime(status.requested_at)}
        </div>
      </td>
      <td>
        <span class={`badge export-${status.state}`}>{status.state}</span>
        {!(status.state === "done" || status.state === "failed") && (
          <div class="small">
            {progress ? (
              <>
                <progress max={progress.total || 1} value={progress.done} aria-label={`Export progress of ${status.export_id}`} />{" "}
                {formatCount(progress.done)} / {formatCount(progress.total)} lines{percent !== null && ` (${percent}%)`}
              </>
            ) : (
              "waiting…"
            )}
          </div>
        )}
        {status.error && <div class="error-text small">{status.error}</div>}
      </td>
      <td class="small">{describeScope(status.scope)}</td>
      <td class="small" data-testid="manifest-summary">
        {r ? (
          <dl class="compact">
            <dt>Events</dt>
            <dd>{formatCount(r.event_count)}</dd>
            <dt>Omitted (witness lines)</dt>
            <dd>{formatCount(r.omitted_count)}</dd>
            <dt>Unsigned tail</dt>
            <dd>{formatCount(r.unsigned_tail)}</dd>
            <dt>Files</dt>
            <dd>
              {formatCount(r.files)} ({formatBytes(r.bytes)})
            </dd>
            <dt>Checkpoints</dt>
            <dd>{formatCount(r.checkpoints)}</dd>
            <dt>Signed by key</dt>
            <dd class="mono">{r.key_id}</dd>
            <dt>manifest.json SHA-256</dt>
            <dd class="mono break">{r.manifest_sha256}</dd>
          </dl>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td>
        {status.state === "done" ? (
          <button type="button" class="download-artifact" onClick={() => void download()} disabled={busy}>
            {busy ? "Downloading…" : "Download .tar"}
          </button>
        ) : (
          <span class="muted">—</span>
        )}
        {error && (
          <div class="error-text small" role="alert">
            {error}
          </div>
        )}
      </td>
    </tr>
  );
}

function ExportForm({ onRequested }: { onRequested: (status: ExportStatus) => void }) {
  const [scope, setScope] = useState<ScopeForm>(EMPTY_SCOPE);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      const status = await api<ExportStatus>("/v1/exports", { method: "POST", body: { scope: scopeBody(scope, true) } });
      setResult({ ok: true, text: `Export ${status.export_id} is ${status.state}.` });
      onRequested(status);
    } catch (error) {
      setResult({ ok: false, text: messageOf(error) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="form-panel">
      <h3>Request an export</h3>
      <form id="export-form" class="stack" onSubmit={submit}>
        <ScopeFields prefix="export" value={scope} onChange={setScope} allowFilter />
        <div class="actions">
          <button id="request-export" type="submit" class="primary" disabled={busy}>
            {busy ? "Requesting…" : "Request export"}
          </button>
        </div>
        {result && (
          <p class={result.ok ? "ok-text" : "error-text"} role={result.ok ? "status" : "alert"} data-testid="export-form-result">
            {result.text}
          </p>
        )}
      </form>
    </div>
  );
}
