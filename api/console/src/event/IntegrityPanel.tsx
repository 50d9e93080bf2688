// The integrity panel: fetches the event's inclusion proof and the signing keys, and checks them
// in this browser (src/integrity), so the verdict does not rest on the server's word.

import { useEffect, useState } from "preact/hooks";

import { api, ApiError, isAbort, messageOf } from "../api";
import type { EventJson, ProofJson, SigningKey } from "../integrity/types";
import { STEPS, verifyEvent, type Step, type StepName } from "../integrity/verify";

const PINNED = "sealtrail.pinnedKey";

const STEP_TITLES: Record<StepName, string> = {
  "entry-hash": "Entry hash",
  "proof-matches": "Proof is about this event",
  "entry-inclusion": "Included in the checkpoint's entries",
  "tenant-head": "Tenant head signed at or after it",
  "checkpoint-hash": "Checkpoint hash",
  signature: "Checkpoint signature",
};

export type State =
  | { kind: "pending" }
  | { kind: "unavailable"; message: string }
  /** The server refused to serve the proof because its own data does not match its signed root. */
  | { kind: "mismatch"; message: string }
  | {
      kind: "done";
      verified: boolean;
      failedStep: StepName | null;
      steps: Step[];
      checkpoint: ProofJson["checkpoint"];
      pinned: boolean;
    };

/**
 * A proof the server could not serve. 409 (not covered yet, projection incomplete) and network
 * errors are worth asking again; a 500 `integrity_mismatch` is the server saying the entries it
 * holds do not match the root it signed, which is a failed verification, not an outage.
 */
export function proofFailure(error: unknown): State {
  if (error instanceof ApiError && error.status === 500 && error.code === "integrity_mismatch") {
    return {
      kind: "mismatch",
      message: `✘ Verification failed: the server reports that the events it holds for this checkpoint do not match its signed root (${error.message}). What is stored has changed since it was sealed; report it as an integrity incident.`,
    };
  }
  const message =
    error instanceof ApiError && error.status === 409
      ? `Not yet covered by a signed checkpoint: ${error.message}`
      : `The proof could not be fetched: ${messageOf(error)}`;
  return { kind: "unavailable", message };
}

function readPinned(): string {
  try {
    return sessionStorage.getItem(PINNED) ?? "";
  } catch {
    return "";
  }
}

export function IntegrityPanel({ event }: { event: EventJson }) {
  const [state, setState] = useState<State>({ kind: "pending" });
  const [attempt, setAttempt] = useState(0);
  const [pinned, setPinned] = useState(readPinned);

  useEffect(() => {
    const abort = new AbortController();
    setState({ kind: "pending" });
    (async () => {
      const proofAnswer = api<ProofJson>("/v1/integrity/proof", { query: { event_id: event.event_id }, signal: abort.signal });
      const keysAnswer = api<{ keys: SigningKey[] }>("/v1/integrity/keys", { signal: abort.signal, anonymous: true });
      // The proof's own answer decides first: a refused proof says more than a failed key list.
      keysAnswer.catch(() => undefined);
      const proof = await proofAnswer;
      const keys = await keysAnswer;
      const result = await verifyEvent({ event, proof, keys: keys.keys, pinnedKey: pinned || null });
      if (!abort.signal.aborted) setState({ kind: "done", ...result, checkpoint: proof.checkpoint, pinned: Boolean(pinned) });
    })().catch((error) => {
      if (isAbort(error) || abort.signal.aborted) return;
      setState(proofFailure(error));
    });
    return () => abort.abort();
  }, [event, attempt, pinned]);

  const dataState =
    state.kind === "done" ? (state.verified ? "verified" : "failed") : state.kind === "mismatch" ? "failed" : state.kind;
  const failedStep = state.kind === "done" ? (state.failedStep ?? "") : state.kind === "mismatch" ? "proof-served" : "";
  return (
    <section
      class={`card integrity integrity-${dataState}`}
      data-testid="integrity-panel"
      data-state={dataState}
      data-failed-step={failedStep}
      aria-labelledby="integrity-title"
    >
      <h2 id="integrity-title">Integrity</h2>
      <p class="verdict" role="status" aria-live="polite">
        {state.kind === "pending" && "Checking this event in your browser…"}
        {(state.kind === "unavailable" || state.kind === "mismatch") && state.message}
        {state.kind === "done" &&
          (state.verified
            ? state.pinned
              ? "✔ Verified in your browser: this event is sealed in the tenant's chain and covered by a checkpoint signed with your pinned key."
              : "✔ Verified in your browser: this event is sealed in the tenant's chain and covered by a checkpoint signed with a key this server publishes. Pin a key obtained elsewhere to rule out the server itself."
            : `✘ Verification failed at “${STEP_TITLES[state.failedStep!]}”: what is shown is not what was sealed and signed.`)}
      </p>
      {(state.kind === "unavailable" || state.kind === "mismatch") && (
        <button id="retry-proof" type="button" onClick={() => setAttempt((n) => n + 1)}>
          Retry
        </button>
      )}
      {state.kind === "done" && (
        <>
          <ol class="steps">
            {state.steps.map((step) => (
              <li key={step.step} data-step={step.step} data-result={step.result} class={`step step-${step.result}`}>
                <span class="step-result">{step.result === "ok" ? "✔ passed" : step.result === "failed" ? "✘ failed" : "– skipped"}</span>
                <span class="step-title">{STEP_TITLES[step.step]}</span>
                <span class="step-summary">{step.summary}</span>
                {step.result === "failed" && (step.expected !== undefined || step.found !== undefined) && (
                  <dl class="expected-found">
                    <dt>Expected</dt>
                    <dd class="mono" data-expected>{step.expected ?? "—"}</dd>
                    <dt>Found</dt>
                    <dd class="mono" data-found>{step.found ?? "—"}</dd>
                  </dl>
                )}
              </li>
            ))}
          </ol>
          {state.checkpoint !== null && typeof state.checkpoint === "object" && (
          <p class="muted small">
            Checkpoint {state.checkpoint.number} of partition {state.checkpoint.partition}, signed by key{" "}
            <span class="mono">{state.checkpoint.key_id}</span>; hash <span class="mono break">{state.checkpoint.checkpoint_hash}</span>
          </p>
          )}
        </>
      )}
      {state.kind === "pending" && (
        <ol class="steps">
          {STEPS.map((step) => (
            <li key={step} data-step={step} data-result="pending" class="step step-pending">
              <span class="step-title">{STEP_TITLES[step]}</span>
            </li>
          ))}
        </ol>
      )}
      <PinnedKey pinned={pinned} onChange={setPinned} />
    </section>
  );
}

function PinnedKey({ pinned, onChange }: { pinned: string; onChange: (key: string) => void }) {
  const [draft, setDraft] = useState(pinned);
  const [error, setError] = useState<string | null>(null);
  const save = (e: Event) => {
    e.preventDefault();
    const key = draft.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(key)) {
      setError("A public key is 64 hexadecimal characters (the raw 32-byte Ed25519 key).");
      return;
    }
    setError(null);
    sessionStorage.setItem(PINNED, key);
    onChange(key);
  };
  const clear = () => {
    sessionStorage.removeItem(PINNED);
    setDraft("");
    setError(null);
    onChange("");
  };
  return (
    <details class="pin" open={Boolean(pinned) || undefined}>
      <summary>{pinned ? "Checked against your pinned public key" : "Pin a trusted public key"}</summary>
      <form class="stack" onSubmit={save}>
        <label for="pinned-key">Trusted checkpoint public key (hex, from a source other than this server)</label>
        <input
          id="pinned-key"
          class="mono"
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
          spellcheck={false}
          autocomplete="off"
          aria-describedby="pinned-key-status"
        />
        <div class="actions">
          <button id="pin-key" type="submit">
            Pin key
          </button>
          {pinned && (
            <button id="unpin-key" type="button" onClick={clear}>
              Unpin
            </button>
          )}
        </div>
        <p id="pinned-key-status" class={error ? "error-text" : "muted small"} role={error ? "alert" : undefined}>
          {error ??
            (pinned
              ? "Kept for this browser session only."
              : "Without a pinned key, the signature is checked with the key this server publishes.")}
        </p>
      </form>
    </details>
  );
}
