import type { EventJson } from "../integrity/types";
import { flatten } from "./flatten";
import { RedactionBadge } from "./Redactions";

/** Every field of the event, as the API returned it, each in a <dd data-field="path">. */
export function FieldList({ event }: { event: EventJson }) {
  const redactions = new Map(event.redactions.map((r) => [r.path, r]));
  const fields = flatten(event).filter(([path]) => !path.startsWith("redactions.") && path !== "redactions");
  return (
    <dl class="fields">
      {fields.map(([path, value]) => {
        const redaction = redactions.get(path);
        const unset = value === null || (Array.isArray(value) && value.length === 0);
        return (
          <div class="field-row" key={path}>
            <dt>{path}</dt>
            <dd data-field={path} class={unset ? "unset" : undefined} data-redacted={redaction ? "true" : undefined}>
              <span class="value">{unset ? "—" : Array.isArray(value) ? value.join(", ") : String(value)}</span>
              {redaction && <RedactionBadge redaction={redaction} />}
            </dd>
          </div>
        );
      })}
    </dl>
  );
}
