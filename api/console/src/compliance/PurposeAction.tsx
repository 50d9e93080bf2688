// A change that needs a justification: the purpose goes in the X-Purpose header and is sealed in
// the audit trail with the change.

import { useState } from "preact/hooks";

import { messageOf } from "../api";

interface Props {
  idPrefix: string;
  buttonLabel: string;
  buttonClass: string;
  withReason?: boolean;
  onSubmit: (purpose: string, reason: string) => Promise<void>;
}

export function PurposeAction({ idPrefix, buttonLabel, buttonClass, withReason, onSubmit }: Props) {
  const [purpose, setPurpose] = useState("");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!purpose.trim()) {
      setError("Say why (the purpose is recorded in the audit trail).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSubmit(purpose.trim(), reason.trim());
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="purpose-action" onSubmit={submit}>
      <label for={`${idPrefix}-purpose`} class="visually-hidden">
        Purpose of this change
      </label>
      <input
        id={`${idPrefix}-purpose`}
        class="purpose-input"
        placeholder="Purpose (required)"
        required
        maxLength={1000}
        value={purpose}
        onInput={(e) => setPurpose(e.currentTarget.value)}
      />
      {withReason && (
        <>
          <label for={`${idPrefix}-reason`} class="visually-hidden">
            Reason
          </label>
          <input
            id={`${idPrefix}-reason`}
            class="reason-input"
            placeholder="Reason"
            value={reason}
            onInput={(e) => setReason(e.currentTarget.value)}
          />
        </>
      )}
      <button type="submit" class={buttonClass} disabled={busy}>
        {busy ? "Working…" : buttonLabel}
      </button>
      {error && (
        <span class="error-text" role="alert">
          {error}
        </span>
      )}
    </form>
  );
}
