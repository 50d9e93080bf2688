import { useEffect, useState } from "preact/hooks";

import { api, isAbort, messageOf, segment } from "../api";
import { formatCount, formatTime, localToRfc3339 } from "../ui/format";
import { StatusLine } from "../ui/StatusLine";

interface Job {
  job_id: string;
  tenant_id: string;
  state: "running" | "passed" | "failed" | "error" | string;
  requested_by: string;
  scope: { from?: string | null; to?: string | null } | null;
  report: Record<string, unknown> | null;
  at: string;
}

type Load = { kind: "loading" } | { kind: "ready" } | { kind: "error"; message: string };

const POLL_MS = 2000;

export function Verification() {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    api<{ jobs: Job[] }>("/v1/integrity/verifications", { signal: abort.signal })
      .then((answer) => {
        setJobs(answer.jobs);
        setLoad({ kind: "ready" });
      })
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [reload]);

  const running = jobs.filter((j) => j.state === "running").map((j) => j.job_id);
  const runningKey = running.join(",");
  useEffect(() => {
    if (!running.length) return;
    const abort = new AbortController();
    const timer = setInterval(() => {
      for (const id of running) {
        (async () => api<Job>(`/v1/integrity/verifications/${segment(id)}`, { signal: abort.signal }))()
          .then((job) => setJobs((current) => current.map((j) => (j.job_id === id ? job : j))))
          .catch(() => undefined);
      }
    }, POLL_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [runningKey]);

  return (
    <div class="screen verification">
      <h1>Verification</h1>
      <StartForm onStarted={(job) => setJobs((current) => [job, ...current.filter((j) => j.job_id !== job.job_id)])} />
      <section class="card" aria-labelledby="jobs-title">
        <h2 id="jobs-title">Verification jobs</h2>
        {load.kind === "loading" && <StatusLine testId="jobs-state" state="loading" message="Loading verification jobs…" />}
        {load.kind === "error" && <StatusLine testId="jobs-state" state="error" message={load.message} onRetry={() => setReload((n) => n + 1)} />}
        {load.kind === "ready" && jobs.length === 0 && <StatusLine testId="jobs-state" state="empty" message="No verification has run yet" />}
        {jobs.length > 0 && (
          <div class="table-scroll" role="region" aria-label="Verification jobs" tabIndex={0}>
            <table class="data-table" data-testid="verification-jobs">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">Window</th>
                  <th scope="col">State</th>
                  <th scope="col">Report</th>
                </tr>
              </thead>
              <tbody>
                {jobs.map((job) => (
                  <tr key={job.job_id} data-job-id={job.job_id} data-state={job.state}>
                    <td>
                      <span class="mono">{job.job_id}</span>
                      <div class="small muted">
                        by {job.requested_by}, {formatTime(job.at)}
                      </div>
                    </td>
                    <td class="small">
                      {job.scope?.from ? formatTime(job.scope.from) : "the beginning"} → {job.scope?.to ? formatTime(job.scope.to) : "now"}
                    </td>
                    <td>
                      <span class={`badge job-${job.state}`}>
                        {job.state === "passed" ? "✔ passed" : job.state === "failed" ? "✘ failed" : job.state}
                      </span>
                    </td>
                    <td>
                      <Report job={job} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

const PASSED: [string, string][] = [
  ["events", "events checked in the chain"],
  ["first_seq", "first sequence"],
  ["last_seq", "last sequence"],
  ["anchored_after", "anchored after sequence"],
  ["checkpoints_verified", "signed checkpoints verified"],
  ["signed_through", "signed through sequence"],
  ["entries_roots_checked", "entries roots recomputed"],
  ["unsigned_tail", "events not yet covered by a checkpoint"],
];

function Report({ job }: { job: Job }) {
  const report = job.report ?? {};
  if (job.state === "running") return <span class="muted">Running…</span>;
  if (job.state === "failed") {
    return (
      <div class="first-break" data-testid="first-break">
        <strong>First break:</strong> {String(report["first_break"] ?? "unknown")}
        <div class="small muted">An integrity incident was raised in the audit trail.</div>
      </div>
    );
  }
  if (job.state === "passed") {
    return (
      <dl class="compact">
        {PASSED.filter(([name]) => report[name] !== undefined && report[name] !== null).map(([name, label]) => (
          <div key={name} class="compact-row">
            <dt>{label}</dt>
            <dd data-report={name}>{typeof report[name] === "number" ? formatCount(report[name] as number) : String(report[name])}</dd>
          </div>
        ))}
      </dl>
    );
  }
  return <span class="error-text">{String(report["error"] ?? JSON.stringify(report))}</span>;
}

function StartForm({ onStarted }: { onStarted: (job: Job) => void }) {
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, string> = {};
      if (from) body["from"] = localToRfc3339(from);
      if (to) body["to"] = localToRfc3339(to);
      onStarted(await api<Job>("/v1/integrity/verifications", { method: "POST", body }));
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-labelledby="start-title">
      <h2 id="start-title">Verify the tenant's chain</h2>
      <p class="muted small">
        The server re-checks every hash link, Merkle root and checkpoint signature in the window; a break raises an
        integrity incident.
      </p>
      <form id="verification-form" class="stack" onSubmit={submit}>
        <div class="filter-grid">
          <div class="field">
            <label for="verification-from">From (optional)</label>
            <input id="verification-from" type="datetime-local" step={1} value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="verification-to">To (optional)</label>
            <input id="verification-to" type="datetime-local" step={1} value={to} onInput={(e) => setTo(e.currentTarget.value)} />
          </div>
        </div>
        <div class="actions">
          <button id="start-verification" type="submit" class="primary" disabled={busy}>
            {busy ? "Starting…" : "Start verification"}
          </button>
        </div>
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}
