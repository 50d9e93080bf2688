import { useEffect, useState } from "preact/hooks";

import { api, isAbort, messageOf, segment } from "../api";
import { formatTime } from "../ui/format";
import { StatusLine } from "../ui/StatusLine";
import { PurposeAction } from "./PurposeAction";

interface Policy {
  policy_id: string;
  tenant_id: string;
  category: string;
  retain_days: number;
  state: string;
  actor: string;
  changed_at: string;
}

type Load = { kind: "loading" } | { kind: "ready"; policies: Policy[] } | { kind: "error"; message: string };

export function Retention({ canChange }: { canChange: boolean }) {
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    api<{ policies: Policy[] }>("/v1/retention-policies", { signal: abort.signal })
      .then((answer) => setLoad({ kind: "ready", policies: answer.policies }))
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [reload]);

  const remove = async (policy: Policy, purpose: string) => {
    await api(`/v1/retention-policies/${segment(policy.category)}`, {
      method: "DELETE",
      headers: { "X-Purpose": purpose },
    });
    setReload((n) => n + 1);
  };

  return (
    <section class="card" aria-labelledby="retention-title" data-testid="retention">
      <h2 id="retention-title">Retention policies</h2>
      <p class="muted small">How long events of each category are kept; * covers every other category.</p>
      {canChange && <RetentionForm onSet={() => setReload((n) => n + 1)} />}
      {load.kind === "loading" && <StatusLine testId="retention-state" state="loading" message="Loading retention policies…" />}
      {load.kind === "error" && <StatusLine testId="retention-state" state="error" message={load.message} onRetry={() => setReload((n) => n + 1)} />}
      {load.kind === "ready" && load.policies.length === 0 && (
        <StatusLine testId="retention-state" state="empty" message="No tenant policies: the deployment's configuration governs retention" />
      )}
      {load.kind === "ready" && load.policies.length > 0 && (
        <div class="table-scroll" role="region" aria-label="Retention policies" tabIndex={0}>
          <table class="data-table" data-testid="retention-table">
            <thead>
              <tr>
                <th scope="col">Category</th>
                <th scope="col">Kept for</th>
                <th scope="col">Set by</th>
                {canChange && <th scope="col">Remove</th>}
              </tr>
            </thead>
            <tbody>
              {load.policies.map((policy) => (
                <tr key={policy.policy_id} data-policy-category={policy.category}>
                  <td class="mono">{policy.category}</td>
                  <td>{policy.retain_days} days</td>
                  <td class="small">
                    <span class="mono">{policy.actor}</span> at {formatTime(policy.changed_at)}
                  </td>
                  {canChange && (
                    <td>
                      <PurposeAction
                        idPrefix={`remove-retention-${policy.category === "*" ? "default" : policy.category}`}
                        buttonLabel="Remove"
                        buttonClass="remove-retention danger"
                        onSubmit={(purpose) => remove(policy, purpose)}
                      />
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

function RetentionForm({ onSet }: { onSet: () => void }) {
  const [category, setCategory] = useState("");
  const [days, setDays] = useState("");
  const [purpose, setPurpose] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const retainDays = Number(days);
    if (!category.trim() || !Number.isInteger(retainDays) || retainDays < 1 || !purpose.trim()) {
      setResult({ ok: false, text: "A category (or *), a whole number of days and a purpose are required." });
      return;
    }
    setBusy(true);
    setResult(null);
    try {
      await api(`/v1/retention-policies/${segment(category.trim())}`, {
        method: "PUT",
        headers: { "X-Purpose": purpose.trim() },
        body: { retain_days: retainDays },
      });
      setResult({ ok: true, text: `Events of ${category.trim()} are now kept for ${retainDays} days.` });
      setPurpose("");
      onSet();
    } catch (error) {
      setResult({ ok: false, text: messageOf(error) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="form-panel">
      <h3>Set a retention policy</h3>
      <form id="retention-form" class="stack" onSubmit={submit}>
        <div class="filter-grid">
          <div class="field">
            <label for="retention-category">Category (or *)</label>
            <input id="retention-category" required value={category} onInput={(e) => setCategory(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="retention-days">Keep for (days)</label>
            <input id="retention-days" type="number" min={1} max={3700} required value={days} onInput={(e) => setDays(e.currentTarget.value)} />
          </div>
          <div class="field wide">
            <label for="retention-purpose">Purpose (recorded as X-Purpose)</label>
            <input id="retention-purpose" required maxLength={1000} value={purpose} onInput={(e) => setPurpose(e.currentTarget.value)} />
          </div>
        </div>
        <div class="actions">
          <button id="set-retention" type="submit" class="primary" disabled={busy}>
            {busy ? "Saving…" : "Set policy"}
          </button>
        </div>
        {result && (
          <p class={result.ok ? "ok-text" : "error-text"} role={result.ok ? "status" : "alert"}>
            {result.text}
          </p>
        )}
      </form>
    </div>
  );
}
