import { useState } from "preact/hooks";

import { api, messageOf } from "../api";
import { ScopeFields } from "./ScopeFields";
import { EMPTY_SCOPE, scopeBody, type ScopeForm } from "./scope";

export function HoldForm({ onPlaced }: { onPlaced: () => void }) {
  const [caseId, setCaseId] = useState("");
  const [purpose, setPurpose] = useState("");
  const [reason, setReason] = useState("");
  const [scope, setScope] = useState<ScopeForm>(EMPTY_SCOPE);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!caseId.trim() || !purpose.trim() || !reason.trim()) {
      setResult({ ok: false, text: "Case id, purpose and reason are required." });
      return;
    }
    setBusy(true);
    setResult(null);
    try {
      const hold = await api<{ hold_id: string; events_covered?: number }>("/v1/legal-holds", {
        method: "POST",
        headers: { "X-Purpose": purpose.trim() },
        body: { case_id: caseId.trim(), reason: reason.trim(), scope: scopeBody(scope, false) },
      });
      const covered = hold.events_covered;
      setResult({
        ok: true,
        text:
          covered === 0
            ? `Hold ${hold.hold_id} placed, but it covers no event today: check its scope.`
            : `Hold ${hold.hold_id} placed${covered === undefined ? "" : `; it covers ${covered} events today`}.`,
      });
      setCaseId("");
      setPurpose("");
      setReason("");
      setScope(EMPTY_SCOPE);
      onPlaced();
    } catch (error) {
      setResult({ ok: false, text: messageOf(error) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="form-panel">
      <h3>Place a legal hold</h3>
      <form id="hold-form" class="stack" onSubmit={submit}>
        <div class="filter-grid">
          <div class="field">
            <label for="hold-case-id">Case id</label>
            <input id="hold-case-id" required value={caseId} onInput={(e) => setCaseId(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="hold-purpose">Purpose (recorded as X-Purpose)</label>
            <input id="hold-purpose" required maxLength={1000} value={purpose} onInput={(e) => setPurpose(e.currentTarget.value)} />
          </div>
          <div class="field wide">
            <label for="hold-reason">Reason</label>
            <input id="hold-reason" required value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          </div>
        </div>
        <ScopeFields prefix="hold" value={scope} onChange={setScope} allowFilter={false} />
        <div class="actions">
          <button id="place-hold" type="submit" class="primary" disabled={busy}>
            {busy ? "Placing…" : "Place hold"}
          </button>
        </div>
        {result && (
          <p class={result.ok ? "ok-text" : "error-text"} role={result.ok ? "status" : "alert"} data-testid="hold-form-result">
            {result.text}
          </p>
        )}
      </form>
    </div>
  );
}
