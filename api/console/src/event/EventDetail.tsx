import { useEffect, useState } from "preact/hooks";

import { api, isAbort, messageOf, segment } from "../api";
import type { Me } from "../auth/me";
import type { EventJson } from "../integrity/types";
import { formatTime } from "../ui/format";
import { OutcomeBadge } from "../ui/OutcomeBadge";
import { StatusLine } from "../ui/StatusLine";
import { Changes } from "./Changes";
import { isDisplayable } from "./displayable";
import { FieldList } from "./FieldList";
import { IntegrityPanel } from "./IntegrityPanel";
import { Redactions } from "./Redactions";
import { Related } from "./Related";

type Load = { kind: "loading" } | { kind: "ready"; event: EventJson } | { kind: "error"; message: string };

export function EventDetail({ eventId }: { eventId: string; me: Me }) {
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    setLoad({ kind: "loading" });
    (async () => api<EventJson>(`/v1/events/${segment(eventId)}`, { signal: abort.signal }))()
      .then((event) => {
        // What is shown (and verified) must be the event that was asked for, not another one.
        if (!isDisplayable(event)) throw new Error("The API answered with something that is not an event.");
        if (event.event_id !== eventId) throw new Error("The API answered with another event than the one asked for.");
        setLoad({ kind: "ready", event });
      })
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [eventId, attempt]);

  if (load.kind !== "ready") {
    return (
      <div class="screen">
        <p>
          <a href="#/timeline" onClick={(e) => { if (history.length > 1) { e.preventDefault(); history.back(); } }}>
            ← Back to the timeline
          </a>
        </p>
        <StatusLine
          testId="event-state"
          state={load.kind === "loading" ? "loading" : "error"}
          message={load.kind === "loading" ? "Loading the event…" : load.message}
          {...(load.kind === "error" ? { onRetry: () => setAttempt((n) => n + 1) } : {})}
        />
      </div>
    );
  }
  const { event } = load;
  return (
    <div class="screen event-screen">
      <p>
        <a href="#/timeline" onClick={(e) => { if (history.length > 1) { e.preventDefault(); history.back(); } }}>
          ← Back to the timeline
        </a>
      </p>
      <section data-testid="event-detail" data-event-id={event.event_id} class="event-detail" aria-labelledby="event-title">
        <div class="event-head">
          <h1 id="event-title" class="mono">{event.action}</h1>
          <OutcomeBadge status={event.outcome.status} />
        </div>
        <p class="muted">
          {formatTime(event.occurred_at)} · <span class="mono">{event.actor.id}</span> on {event.resource.type}{" "}
          <span class="mono">{event.resource.id}</span> · sequence {event.integrity.seq}
        </p>
        <div class="detail-grid">
          <div class="detail-main">
            <IntegrityPanel event={event} />
            <Changes changes={event.changes} />
            <section class="card" aria-labelledby="fields-title">
              <h2 id="fields-title">Fields</h2>
              <FieldList event={event} />
            </section>
          </div>
          <div class="detail-side">
            <Redactions event={event} />
            <Related event={event} />
          </div>
        </div>
      </section>
    </div>
  );
}
