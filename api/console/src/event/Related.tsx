import { useEffect, useState } from "preact/hooks";

import { api, isAbort, messageOf } from "../api";
import type { EventJson } from "../integrity/types";
import { eventHref, timelineHref } from "../router";
import { formatTime } from "../ui/format";
import { isDisplayable } from "./displayable";

type Listing = { kind: "loading" } | { kind: "ready"; events: EventJson[]; more: boolean } | { kind: "error"; message: string };

function useEvents(filter: Record<string, string> | null): Listing {
  const [listing, setListing] = useState<Listing>({ kind: "loading" });
  const key = filter ? JSON.stringify(filter) : "";
  useEffect(() => {
    if (!filter) return;
    const abort = new AbortController();
    setListing({ kind: "loading" });
    api<{ events: EventJson[]; next_cursor: string | null }>("/v1/events", { query: { ...filter, limit: 20 }, signal: abort.signal })
      .then((page) =>
        setListing({
          kind: "ready",
          events: (Array.isArray(page?.events) ? page.events : []).filter(isDisplayable),
          more: Boolean(page?.next_cursor),
        }),
      )
      .catch((error) => isAbort(error) || setListing({ kind: "error", message: messageOf(error) }));
    return () => abort.abort();
  }, [key]);
  return listing;
}

function EventLinks({ listing, self, testId, emptyText, all }: { listing: Listing; self: string; testId: string; emptyText: string; all: string }) {
  if (listing.kind === "loading") return <p class="muted" data-testid={testId} data-state="loading">Loading…</p>;
  if (listing.kind === "error") return <p class="error-text" data-testid={testId} data-state="error">{listing.message}</p>;
  const others = listing.events.filter((e) => e.event_id !== self);
  if (others.length === 0) return <p class="muted" data-testid={testId} data-state="empty">{emptyText}</p>;
  return (
    <div data-testid={testId} data-state="ready">
      <ul class="related-list">
        {others.map((e) => (
          <li key={e.event_id} data-event-id={e.event_id}>
            <a href={eventHref(e.event_id)}>
              <span class="mono">{e.action}</span> <span class="muted">at {formatTime(e.occurred_at)}</span>
            </a>
          </li>
        ))}
      </ul>
      {listing.more && (
        <a href={all} class="small">
          See all in the timeline
        </a>
      )}
    </div>
  );
}

export function Related({ event }: { event: EventJson }) {
  const correlation = event.correlation_id ?? null;
  const sameCorrelation = useEvents(correlation ? { correlation_id: correlation } : null);
  const caused = useEvents({ causation_id: event.event_id });
  return (
    <section class="card" aria-labelledby="related-title" data-testid="related">
      <h2 id="related-title">Related events</h2>
      <h3>Caused by</h3>
      {event.causation_id ? (
        <p>
          <a data-testid="causation-link" href={eventHref(event.causation_id)} class="mono">
            {event.causation_id}
          </a>
        </p>
      ) : (
        <p class="muted">This event names no causing event.</p>
      )}
      <h3>Same correlation id</h3>
      {correlation ? (
        <>
          <p class="small">
            <a data-testid="correlation-link" href={timelineHref({ correlation_id: correlation })}>
              All events with correlation id <span class="mono">{correlation}</span>
            </a>
          </p>
          <EventLinks
            listing={sameCorrelation}
            self={event.event_id}
            testId="correlated-events"
            emptyText="No other event carries this correlation id."
            all={timelineHref({ correlation_id: correlation })}
          />
        </>
      ) : (
        <p class="muted">This event has no correlation id.</p>
      )}
      <h3>Events this one caused</h3>
      <EventLinks
        listing={caused}
        self={event.event_id}
        testId="caused-events"
        emptyText="No event names this one as its cause."
        all={timelineHref({ causation_id: event.event_id })}
      />
    </section>
  );
}
