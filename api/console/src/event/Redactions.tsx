import type { EventJson } from "../integrity/types";

type Redaction = EventJson["redactions"][number];

/** What a method did, in words, for the badge's accessible title. */
const METHODS: Record<string, string> = {
  mask: "masked",
  masked: "masked",
  tokenize: "tokenized",
  tokenized: "tokenized",
  generalize: "generalized",
  generalized: "generalized",
  drop: "dropped",
  dropped: "dropped",
  hash: "hashed",
};

export function methodWord(method: string): string {
  return METHODS[method] ?? method;
}

export function RedactionBadge({ redaction }: { redaction: Redaction }) {
  const word = methodWord(redaction.method);
  return (
    <span
      class={`badge redaction redaction-${redaction.method}`}
      data-redaction-path={redaction.path}
      data-method={redaction.method}
      title={`${redaction.path} was ${word} as ${redaction.label} before sealing`}
    >
      {word} · {redaction.label}
    </span>
  );
}

export function Redactions({ event }: { event: EventJson }) {
  return (
    <section class="card" aria-labelledby="redactions-title" data-testid="redactions">
      <h2 id="redactions-title">Redactions</h2>
      <p class="muted small">
        Classification policy <span data-testid="policy-version" class="mono">{event.classification.policy_version}</span>
        {" · "}data class {event.classification.data_class}
        {event.classification.labels.length > 0 && ` · labels ${event.classification.labels.join(", ")}`}
      </p>
      {event.redactions.length === 0 ? (
        <p class="muted">Nothing was redacted in this event.</p>
      ) : (
        <ul class="redaction-list">
          {event.redactions.map((r, i) => (
            <li key={`${r.path}-${i}`} data-redaction={r.path}>
              <span class="mono">{r.path}</span> <RedactionBadge redaction={r} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
