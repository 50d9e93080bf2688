// One way to say "loading", "nothing here" or "that failed", announced to screen readers.

interface Props {
  testId: string;
  state: "loading" | "empty" | "error" | "ok";
  message: string;
  onRetry?: () => void;
}

export function StatusLine({ testId, state, message, onRetry }: Props) {
  return (
    <div
      class={`status status-${state}`}
      data-testid={testId}
      data-state={state}
      role={state === "error" ? "alert" : "status"}
      aria-live={state === "error" ? "assertive" : "polite"}
    >
      {state === "loading" && <span class="spinner" aria-hidden="true" />}
      <span class="status-text">{message}</span>
      {onRetry && (
        <button type="button" class="small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}
