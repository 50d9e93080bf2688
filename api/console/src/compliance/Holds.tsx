import { useEffect, useState } from "preact/hooks";

import { api, isAbort, messageOf, segment } from "../api";
import { formatTime } from "../ui/format";
import { StatusLine } from "../ui/StatusLine";
import { HoldForm } from "./HoldForm";
import { PurposeAction } from "./PurposeAction";
import { describeScope } from "./scope";

export interface HoldChange {
  change: string;
  reason: string;
  purpose: string;
  actor: string;
  request_id: string;
  at: string;
}

export interface Hold {
  hold_id: string;
  tenant_id: string;
  case_id: string;
  scope: unknown;
  state: "active" | "released" | string;
  history: HoldChange[];
}

type Load = { kind: "loading" } | { kind: "ready"; holds: Hold[] } | { kind: "error"; message: string };

export function Holds({ canChange }: { canChange: boolean }) {
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    api<{ holds: Hold[] }>("/v1/legal-holds", { signal: abort.signal })
      .then((answer) => setLoad({ kind: "ready", holds: answer.holds }))
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [reload]);

  const release = async (hold: Hold, purpose: string, reason: string) => {
    await api(`/v1/legal-holds/${segment(hold.hold_id)}/release`, {
      method: "POST",
      headers: { "X-Purpose": purpose },
      body: { reason },
    });
    setReload((n) => n + 1);
  };

  return (
    <section class="card" aria-labelledby="holds-title" data-testid="legal-holds">
      <h2 id="holds-title">Legal holds</h2>
      <p class="muted small">Events in an active hold's scope are kept whatever the retention policy says.</p>
      {canChange && <HoldForm onPlaced={() => setReload((n) => n + 1)} />}
      {load.kind === "loading" && <StatusLine testId="holds-state" state="loading" message="Loading legal holds…" />}
      {load.kind === "error" && <StatusLine testId="holds-state" state="error" message={load.message} onRetry={() => setReload((n) => n + 1)} />}
      {load.kind === "ready" && load.holds.length === 0 && <StatusLine testId="holds-state" state="empty" message="No legal holds" />}
      {load.kind === "ready" && load.holds.length > 0 && (
        <div class="table-scroll" role="region" aria-label="Legal holds" tabIndex={0}>
          <table class="data-table" data-testid="holds-table">
            <thead>
              <tr>
                <th scope="col">Case</th>
                <th scope="col">State</th>
                <th scope="col">Scope</th>
                <th scope="col">History</th>
                {canChange && <th scope="col">Release</th>}
              </tr>
            </thead>
            <tbody>
              {load.holds.map((hold) => (
                <tr key={hold.hold_id} data-hold-id={hold.hold_id} data-state={hold.state}>
                  <td>
                    <strong>{hold.case_id}</strong>
                    <div class="mono small muted">{hold.hold_id}</div>
                  </td>
                  <td>
                    <span class={`badge hold-${hold.state}`}>{hold.state}</span>
                  </td>
                  <td class="small">{describeScope(hold.scope)}</td>
                  <td>
                    <ol class="history">
                      {hold.history.map((change, i) => (
                        <li key={i} data-change={change.change}>
                          <strong>{change.change}</strong> by <span class="mono">{change.actor}</span> at{" "}
                          <time dateTime={change.at}>{formatTime(change.at)}</time>
                          {change.purpose && <div class="small">Purpose: {change.purpose}</div>}
                          {change.reason && <div class="small">Reason: {change.reason}</div>}
                        </li>
                      ))}
                    </ol>
                  </td>
                  {canChange && (
                    <td>
                      {hold.state === "active" ? (
                        <PurposeAction
                          idPrefix={`release-${hold.hold_id}`}
                          buttonLabel="Release"
                          buttonClass="release-hold danger"
                          withReason
                          onSubmit={(purpose, reason) => release(hold, purpose, reason)}
                        />
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
